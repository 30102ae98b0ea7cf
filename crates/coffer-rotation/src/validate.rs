//! [`RotationSpec::validate`]: every rule names the field (as a path below `spec`) and what is
//! allowed, so the future admission of `SecretRotation` can turn each into a 422 cause.

use crate::error::SpecError;
use crate::generate::password::DEFAULT_SYMBOLS;
use crate::schedule::parse_cron;
use crate::spec::{
    Generator, PasswordSpec, PostgresMode, PostgresTarget, RotationSpec, Schedule, SslMode,
    Symbols, TargetSpec,
};

/// PostgreSQL's `NAMEDATALEN - 1`: longer role names are silently truncated by the server.
pub const MAX_ROLE_NAME_LEN: usize = 63;

impl RotationSpec {
    /// Checks every field; the first problem found is returned.
    pub fn validate(&self) -> Result<(), SpecError> {
        if let Some(e) = coffer_api::is_dns1123_subdomain(&self.secret_name).first() {
            return Err(SpecError::invalid("secretName", e.clone()));
        }
        match &self.schedule {
            Schedule::Interval(d) if d.get() < std::time::Duration::from_secs(1) => {
                return Err(SpecError::invalid(
                    "schedule.interval",
                    "must be at least 1s",
                ));
            }
            Schedule::Interval(_) => {}
            Schedule::Cron(expr) => {
                parse_cron(expr)?;
            }
        }
        match &self.generator {
            Generator::Password(p) => validate_password(p)?,
            Generator::RandomBytes(r) => {
                if !(16..=4096).contains(&r.length) {
                    return Err(SpecError::invalid(
                        "generator.randomBytes.length",
                        format!("must be between 16 and 4096 (got {})", r.length),
                    ));
                }
                config_key("generator.randomBytes.key", &r.key)?;
            }
            Generator::Ed25519(_) => {}
            Generator::Rsa(r) => {
                if ![2048, 3072, 4096].contains(&r.bits) {
                    return Err(SpecError::invalid(
                        "generator.rsa.bits",
                        format!("must be 2048, 3072 or 4096 (got {})", r.bits),
                    ));
                }
            }
            Generator::TlsCertificate(t) => {
                if let Some(e) = coffer_api::is_dns1123_subdomain(&t.ca_secret_name).first() {
                    return Err(SpecError::invalid(
                        "generator.tlsCertificate.caSecretName",
                        e.clone(),
                    ));
                }
                if t.common_name.is_empty() && t.dns_names.is_empty() {
                    return Err(SpecError::invalid(
                        "generator.tlsCertificate.commonName",
                        "set commonName or at least one of dnsNames",
                    ));
                }
                if t.validity.get() < std::time::Duration::from_secs(60) {
                    return Err(SpecError::invalid(
                        "generator.tlsCertificate.validity",
                        "must be at least 1m",
                    ));
                }
            }
        }
        if let TargetSpec::Postgres(pg) = &self.target {
            validate_postgres(self, pg)?;
        }
        Ok(())
    }
}

fn validate_password(p: &PasswordSpec) -> Result<(), SpecError> {
    const F: &str = "generator.password";
    if !(8..=1024).contains(&p.length) {
        return Err(SpecError::invalid(
            format!("{F}.length"),
            format!("must be between 8 and 1024 (got {})", p.length),
        ));
    }
    if let Symbols::Set(set) = &p.symbols {
        let mut seen = std::collections::BTreeSet::new();
        for c in set.chars() {
            if !c.is_ascii_punctuation() || !seen.insert(c) {
                return Err(SpecError::invalid(
                    format!("{F}.symbols"),
                    format!(
                        "must be distinct ASCII punctuation characters, e.g. {DEFAULT_SYMBOLS:?}"
                    ),
                ));
            }
        }
    }
    let symbols_on = match &p.symbols {
        Symbols::Enabled(on) => *on,
        Symbols::Set(s) => !s.is_empty(),
    };
    let classes = [
        ("lowercase", p.lowercase, p.minimum.lowercase),
        ("uppercase", p.uppercase, p.minimum.uppercase),
        ("digits", p.digits, p.minimum.digits),
        ("symbols", symbols_on, p.minimum.symbols),
    ];
    if !classes.iter().any(|(_, on, _)| *on) {
        return Err(SpecError::invalid(
            F,
            "enable at least one of lowercase, uppercase, digits, symbols",
        ));
    }
    let mut sum = 0u64;
    for (name, on, min) in classes {
        match (on, min) {
            (false, Some(n)) if n > 0 => {
                return Err(SpecError::invalid(
                    format!("{F}.minimum.{name}"),
                    format!("is {n} but {name} are disabled; enable them or remove the minimum"),
                ));
            }
            (true, n) => sum += u64::from(n.unwrap_or(1)),
            _ => {}
        }
    }
    if sum > u64::from(p.length) {
        return Err(SpecError::invalid(
            format!("{F}.minimum"),
            format!(
                "the minimums add up to {sum}, more than length {}",
                p.length
            ),
        ));
    }
    config_key(&format!("{F}.key"), &p.key)
}

fn validate_postgres(spec: &RotationSpec, pg: &PostgresTarget) -> Result<(), SpecError> {
    const F: &str = "target.postgres";
    match &spec.generator {
        Generator::Password(p) if p.key == "password" => {}
        _ => {
            return Err(SpecError::invalid(
                "generator",
                "a postgres target needs generator.password (with the default key `password`)",
            ));
        }
    }
    if let Some(e) = coffer_api::is_dns1123_subdomain(&pg.admin_secret_name).first() {
        return Err(SpecError::invalid(
            format!("{F}.adminSecretName"),
            e.clone(),
        ));
    }
    if pg.host.is_empty() {
        return Err(SpecError::invalid(format!("{F}.host"), "must not be empty"));
    }
    if pg.database.is_empty() {
        return Err(SpecError::invalid(
            format!("{F}.database"),
            "must not be empty",
        ));
    }
    if pg.sslmode != SslMode::Disable {
        return Err(SpecError::invalid(
            format!("{F}.sslmode"),
            "only `disable` is implemented yet; use it on loopback or a trusted network",
        ));
    }
    match pg.mode {
        PostgresMode::SingleUser => {
            let user = pg.username.as_deref().unwrap_or_default();
            role_name(&format!("{F}.username"), user)?;
            if !spec.grace_period.get().is_zero() {
                return Err(SpecError::invalid(
                    "gracePeriod",
                    "singleUser mode cannot keep the previous password valid; use mode: alternatingUsers or gracePeriod: 0s",
                ));
            }
        }
        PostgresMode::AlternatingUsers => {
            if pg.usernames.len() != 2 || pg.usernames[0] == pg.usernames[1] {
                return Err(SpecError::invalid(
                    format!("{F}.usernames"),
                    "alternatingUsers needs exactly two different role names, e.g. [app_a, app_b]",
                ));
            }
            for (i, u) in pg.usernames.iter().enumerate() {
                role_name(&format!("{F}.usernames[{i}]"), u)?;
            }
        }
    }
    Ok(())
}

fn role_name(field: &str, name: &str) -> Result<(), SpecError> {
    if name.is_empty() || name.len() > MAX_ROLE_NAME_LEN || name.contains('\0') {
        return Err(SpecError::invalid(
            field,
            format!("must be 1 to {MAX_ROLE_NAME_LEN} bytes with no NUL"),
        ));
    }
    Ok(())
}

fn config_key(field: &str, key: &str) -> Result<(), SpecError> {
    match coffer_api::is_config_key(key).first() {
        Some(e) => Err(SpecError::invalid(field, e.clone())),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// YAML as the API server sees it: converted to JSON first (serde_yaml alone wants YAML
    /// tags for enums).
    fn spec(yaml: &str) -> RotationSpec {
        let json: serde_json::Value = serde_yaml::from_str(yaml).expect("test YAML parses");
        serde_json::from_value(json).expect("test spec parses")
    }

    #[test]
    fn a_full_postgres_spec_parses_and_validates() {
        let s = spec(
            "secretName: orders-db\nschedule: {interval: 24h}\ngenerator:\n  password: {length: 40, symbols: '-_.', minimum: {digits: 3}}\ngracePeriod: 1h30m\ntarget:\n  postgres: {adminSecretName: pg-admin, host: 127.0.0.1, database: orders, mode: alternatingUsers, usernames: [orders_a, orders_b]}\nconsumers: [{deployment: orders}]\n",
        );
        s.validate().expect("valid");
        assert_eq!(s.grace_period.get().as_secs(), 5400);
        let json = serde_json::to_value(&s).expect("serializes");
        assert_eq!(json["gracePeriod"], "1h30m");
        assert_eq!(json["target"]["postgres"]["sslmode"], "disable");
        assert_eq!(json["target"]["postgres"]["port"], 5432);
        let back: RotationSpec = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, s);
    }

    #[test]
    fn target_none_and_cron() {
        let s = spec(
            "secretName: api-key\nschedule: {cron: '0 3 * * *'}\ngenerator: {randomBytes: {encoding: hex}}\ntarget: none\n",
        );
        s.validate().expect("valid");
        assert_eq!(s.target, TargetSpec::None);
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            ("schedule: {cron: 'not a cron'}", "schedule.cron"),
            ("schedule: {interval: 0s}", "schedule.interval"),
            (
                "generator: {password: {length: 8, minimum: {digits: 9}}}",
                "generator.password.minimum",
            ),
            (
                "generator: {password: {digits: false, minimum: {digits: 1}}}",
                "generator.password.minimum.digits",
            ),
            (
                "generator: {password: {symbols: 'a'}}",
                "generator.password.symbols",
            ),
            ("generator: {rsa: {bits: 1024}}", "generator.rsa.bits"),
            (
                "target: {postgres: {adminSecretName: a, host: h, database: d, mode: alternatingUsers, usernames: [x, x]}}",
                "target.postgres.usernames",
            ),
            (
                "gracePeriod: 1m\ntarget: {postgres: {adminSecretName: a, host: h, database: d, mode: singleUser, username: u}}",
                "gracePeriod",
            ),
            (
                "target: {postgres: {adminSecretName: a, host: h, database: d, mode: singleUser, username: u, sslmode: require}}",
                "target.postgres.sslmode",
            ),
        ];
        for (extra, field) in cases {
            let mut doc: serde_yaml::Mapping = serde_yaml::from_str(
                "secretName: s\nschedule: {interval: 1h}\ngenerator: {password: {}}\n",
            )
            .expect("base");
            let extra: serde_yaml::Mapping = serde_yaml::from_str(extra).expect("extra");
            doc.extend(extra);
            let json = serde_json::to_value(serde_yaml::Value::Mapping(doc)).expect("json");
            let s: RotationSpec = serde_json::from_value(json).expect("parses");
            let err = s.validate().expect_err(field).to_string();
            assert!(err.starts_with(&format!("spec.{field}:")), "{field}: {err}");
        }
    }

    #[test]
    fn go_durations() {
        for (text, secs) in [
            ("30s", 30.0),
            ("24h", 86400.0),
            ("1h30m", 5400.0),
            ("1.5s", 1.5),
        ] {
            let d: crate::GoDuration = text.parse().expect(text);
            assert_eq!(d.get().as_secs_f64(), secs, "{text}");
            assert_eq!(d.to_string(), text);
        }
        for bad in ["", "5", "5d", "-1s", "h"] {
            assert!(bad.parse::<crate::GoDuration>().is_err(), "{bad:?}");
        }
    }
}
