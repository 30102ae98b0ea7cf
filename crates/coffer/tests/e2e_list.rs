//! End to end: LIST pagination and resourceVersion semantics (`reference/k8s-api.md` §12.1,
//! §12.2) over real HTTPS and real kubectl: pages after the first read the first page's
//! snapshot whatever is written in between, `remainingItemCount` counts what is left, `Exact`
//! reads an old state, invalid combinations are kube's 422s, and a snapshot compacted away
//! (`coffer storage compact` between two runs of the server) is kube's 410 with a fresh token.

mod support;

use serde_json::Value;
use support::Coffer;
use support::https::{Https, Reply, Tokens};

const SECRETS: &str = "/api/v1/namespaces/default/secrets";
const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

/// The test's client: a runtime, the HTTPS client and the admin token.
struct Client {
    rt: tokio::runtime::Runtime,
    https: Https,
    admin: String,
}

impl Client {
    fn new(c: &Coffer, tokens: &Tokens) -> Client {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let https = rt.block_on(async { c.https() });
        Client {
            rt,
            https,
            admin: tokens.token(Tokens::ADMIN).to_owned(),
        }
    }

    fn send(&self, method: &str, path: &str, body: Option<String>) -> Reply {
        let body = body.map(|b| ("application/json", b.into_bytes()));
        self.rt
            .block_on(self.https.send(method, path, Some(&self.admin), body))
    }

    fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None)
    }

    /// A 200 list's `(names, resourceVersions, values of key v)` and its metadata.
    fn list(&self, query: &str) -> (Vec<(String, String, String)>, Value) {
        let r = self.get(&format!("{SECRETS}?{query}"));
        assert_eq!(r.status, 200, "{query}: {}", r.text());
        let list = r.json();
        let items = list["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| {
                (
                    i["metadata"]["name"].as_str().expect("name").to_owned(),
                    i["metadata"]["resourceVersion"]
                        .as_str()
                        .expect("rv")
                        .to_owned(),
                    i["data"]["v"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        (items, list["metadata"].clone())
    }

    /// Creates or replaces Secret `name` with `v: value`; its new resourceVersion and
    /// stored `data.v`.
    fn write(&self, method: &str, name: &str, value: &str) -> (String, String) {
        let body = format!(
            r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"{name}","labels":{{"page":"yes"}}}},"stringData":{{"v":"{value}"}}}}"#
        );
        let path = match method {
            "POST" => SECRETS.to_owned(),
            _ => format!("{SECRETS}/{name}"),
        };
        let r = self.send(method, &path, Some(body));
        assert!(
            r.status == 200 || r.status == 201,
            "{method} {name}: {}",
            r.text()
        );
        let obj = r.json();
        (
            obj["metadata"]["resourceVersion"]
                .as_str()
                .expect("rv")
                .to_owned(),
            obj["data"]["v"].as_str().expect("data.v").to_owned(),
        )
    }
}

fn token(meta: &Value) -> String {
    meta["continue"]
        .as_str()
        .expect("a continue token")
        .to_owned()
}

#[test]
fn paginated_list_is_one_snapshot_and_expires_with_kubes_410() {
    let tokens = Tokens::new([]);
    let flags = tokens.flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut c = Coffer::start(&flags);
    let client = Client::new(&c, &tokens);
    let mut snapshot = Vec::new();
    for name in ["s1", "s2", "s3", "s4", "s5"] {
        let (rv, value) = client.write("POST", name, &format!("{name}-old"));
        snapshot.push((name.to_owned(), rv, value));
    }

    // Page 1, then writes of every kind, then the rest: the first page's snapshot exactly.
    let (page1, meta1) = client.list("limit=2");
    assert_eq!(page1, snapshot[..2]);
    assert_eq!(meta1["remainingItemCount"], 3, "{meta1}");
    let rv = meta1["resourceVersion"].as_str().expect("rv").to_owned();
    let (_, s3_new) = client.write("PUT", "s3", "s3-new");
    assert_ne!(s3_new, snapshot[2].2);
    let r = client.send("DELETE", &format!("{SECRETS}/s4"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    client.write("POST", "s2a", "inserted");
    client.write("POST", "s6", "appended");
    let (page2, meta2) = client.list(&format!("limit=2&continue={}", token(&meta1)));
    assert_eq!(page2, snapshot[2..4]);
    assert_eq!(meta2["resourceVersion"], rv.as_str());
    assert_eq!(meta2["remainingItemCount"], 1, "{meta2}");
    let (page3, meta3) = client.list(&format!("limit=2&continue={}", token(&meta2)));
    assert_eq!(page3, snapshot[4..]);
    assert_eq!(meta3["resourceVersion"], rv.as_str());
    assert!(meta3.get("continue").is_none() && meta3.get("remainingItemCount").is_none());

    // A selector hides remainingItemCount, as in kube; the pages still read one snapshot.
    let (selected, meta) = client.list("limit=2&labelSelector=page%3Dyes");
    assert_eq!(selected.len(), 2);
    assert!(meta.get("remainingItemCount").is_none(), "{meta}");
    assert!(meta.get("continue").is_some(), "{meta}");

    // Exact at the old revision is the old state; unset and NotOlderThan are the latest.
    let (exact, meta) = client.list(&format!("resourceVersion={rv}&resourceVersionMatch=Exact"));
    assert_eq!(exact, snapshot);
    assert_eq!(meta["resourceVersion"], rv.as_str());
    let latest_names = ["s1", "s2", "s2a", "s3", "s5", "s6"];
    for query in [
        "",
        "resourceVersion=0",
        &format!("resourceVersion={rv}&resourceVersionMatch=NotOlderThan"),
    ] {
        let (items, _) = client.list(query);
        let names: Vec<&str> = items.iter().map(|i| i.0.as_str()).collect();
        assert_eq!(names, latest_names, "{query}");
    }

    // Tables page the same way and carry the count too.
    let table = client.rt.block_on(client.https.send_with(
        "GET",
        &format!("{SECRETS}?limit=2"),
        Some(&client.admin),
        &[("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")],
        None,
    ));
    assert_eq!(table.status, 200, "{}", table.text());
    let table = table.json();
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["rows"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        table["metadata"]["remainingItemCount"], 4,
        "{}",
        table["metadata"]
    );

    // A resourceVersion from the future: kube's 504, for Exact and NotOlderThan alike.
    let future: u64 = rv.parse::<u64>().expect("numeric rv") + 1000;
    for rv_match in ["Exact", "NotOlderThan"] {
        let r = client.get(&format!(
            "{SECRETS}?resourceVersion={future}&resourceVersionMatch={rv_match}"
        ));
        assert_eq!(r.status, 504, "{}", r.text());
        assert_eq!(r.json()["reason"], "Timeout");
        assert!(
            r.message().starts_with(&format!(
                "Timeout: Too large resource version: {future}, current: "
            )),
            "{}",
            r.message()
        );
    }

    // Invalid combinations: kube's 422s (and 400 for a resourceVersion with continue).
    let invalid = |query: &str, message: &str| {
        let r = client.get(&format!("{SECRETS}?{query}"));
        assert_eq!(
            (r.status, r.message()),
            (422, message.to_owned()),
            "{query}"
        );
        assert_eq!(r.json()["reason"], "Invalid");
    };
    invalid(
        "resourceVersionMatch=Exact",
        "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
    );
    invalid(
        "resourceVersion=0&resourceVersionMatch=Exact",
        "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
    );
    invalid(
        &format!(
            "resourceVersion={rv}&resourceVersionMatch=NotOlderThan&continue={}",
            token(&meta1)
        ),
        "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue is provided",
    );
    let r = client.get(&format!(
        "{SECRETS}?resourceVersion={rv}&continue={}",
        token(&meta1)
    ));
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        r.message(),
        "specifying resource version is not allowed when using continue"
    );

    // kubectl's chunked get walks the latest state page by page.
    for v in ["1.27", "1.33"] {
        let chunked = c.ok(v, &["get", "secrets", "--chunk-size=2", "-o", "name"]);
        let names: Vec<&str> = chunked.lines().collect();
        assert_eq!(
            names,
            latest_names.map(|n| format!("secret/{n}")),
            "kubectl {v}"
        );
        let table = c.ok(v, &["get", "secrets", "--chunk-size=2"]);
        assert_eq!(table.lines().count(), 1 + latest_names.len(), "{table}");
    }

    // Compact the embedded store past the snapshot (offline, as `coffer storage compact`
    // must be), then continue: kube's 410 and a token that resumes from the latest state.
    c.stop();
    let out = c.coffer(&[
        "storage",
        "compact",
        "--data-dir",
        c.data_dir().to_str().expect("utf8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.restart(&flags);
    let client = Client::new(&c, &tokens);
    let r = client.get(&format!("{SECRETS}?limit=2&continue={}", token(&meta1)));
    assert_eq!(r.status, 410, "{}", r.text());
    let status = r.json();
    assert_eq!(status["reason"], "Expired");
    assert_eq!(status["message"], CONTINUE_EXPIRED);
    let fresh = status["metadata"]["continue"]
        .as_str()
        .expect("a fresh token in the 410")
        .to_owned();
    let (resumed, meta) = client.list(&format!("limit=2&continue={fresh}"));
    let names: Vec<&str> = resumed.iter().map(|i| i.0.as_str()).collect();
    assert_eq!(
        names,
        ["s2a", "s3"],
        "resumed after s2 from the latest state"
    );
    assert_eq!(resumed[1].2, s3_new);
    assert_ne!(meta["resourceVersion"], rv.as_str());
    let (rest, _) = client.list(&format!("limit=2&continue={}", token(&meta)));
    let names: Vec<&str> = rest.iter().map(|i| i.0.as_str()).collect();
    assert_eq!(names, ["s5", "s6"]);

    let r = client.get(&format!(
        "{SECRETS}?resourceVersion={rv}&resourceVersionMatch=Exact"
    ));
    assert_eq!(r.status, 410, "{}", r.text());
    assert_eq!(r.json()["reason"], "Expired");
    // kube-apiserver's etcd3 store words a list at a compacted revision this way.
    assert_eq!(
        r.message(),
        "The resourceVersion for the provided list is too old."
    );
}

/// `--etcd-compaction-interval` (kube-apiserver's compactor): with a 1 s interval, a state
/// older than one interval is compacted away while the server runs, so reading it exactly is
/// kube's 410; the latest state is untouched.
#[test]
fn the_server_compacts_history_older_than_its_interval() {
    let tokens = Tokens::new([]);
    let flags = tokens.flags();
    let mut flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    flags.push("--etcd-compaction-interval=1s");
    let c = Coffer::start(&flags);
    let client = Client::new(&c, &tokens);
    let (old_rv, _) = client.write("POST", "c1", "old");
    client.write("PUT", "c1", "new");
    let exact = format!("{SECRETS}?resourceVersion={old_rv}&resourceVersionMatch=Exact");
    assert_eq!(client.get(&exact).status, 200, "fresh history is readable");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let r = client.get(&exact);
        if r.status == 410 {
            assert_eq!(
                r.message(),
                "The resourceVersion for the provided list is too old."
            );
            break;
        }
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            std::time::Instant::now() < deadline,
            "history was not compacted within 20 s at a 1 s interval"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let (items, _) = client.list("");
    let c1: Vec<_> = items.iter().filter(|i| i.0 == "c1").collect();
    assert_eq!(c1.len(), 1);
    assert_eq!(c1[0].2, "bmV3", "the latest state (base64 of `new`) stays");
}
