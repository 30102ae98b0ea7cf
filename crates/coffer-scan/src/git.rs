//! Git history: every blob reachable from any ref, each read once, attributed to the oldest
//! commit (by commit time) whose tree holds it.
//!
//! This finds a secret that was added and later deleted: the blob that held it stays in
//! history. Uncommitted changes are not part of history; scan the work tree for those. A blob
//! that appears under two paths is scanned once, under the first path seen.

use std::collections::HashSet;
use std::path::Path;

use gix::ObjectId;

use crate::error::{Error, Result};
use crate::finding::CommitInfo;

/// Files of HEAD's tree handed over for posture checks.
const MANIFEST_EXTENSIONS: &[&str] = &[".yaml", ".yml", ".json"];

/// What the history walk hands the scanner.
pub(crate) enum GitEvent<'a> {
    /// The number of commits to be visited, sent once before the first commit.
    Commits(u64),
    /// A blob first seen in `commit`.
    Blob {
        path: &'a str,
        data: &'a [u8],
        commit: &'a CommitInfo,
    },
    /// A blob too large to load, skipped.
    Skipped,
    /// A commit is done.
    CommitDone,
    /// A blob of the newest commit of HEAD, for posture checks of the current tree.
    Head { path: &'a str, data: &'a [u8] },
}

/// Walks the repository that contains `path` (a work tree, a directory inside one, or a bare
/// repository). Paths are relative to the repository root.
pub(crate) fn walk_history(
    path: &Path,
    max_size: u64,
    mut visit: impl FnMut(GitEvent<'_>),
) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| Error::git(path, e);
    let repo = gix::discover(path).map_err(|e| err(&e))?;
    let mut tips: Vec<ObjectId> = Vec::new();
    let head = repo.head_id().ok().map(|id| id.detach());
    tips.extend(head);
    let platform = repo.references().map_err(|e| err(&e))?;
    for r in platform.all().map_err(|e| err(&e))? {
        let Ok(mut r) = r else { continue };
        if let Ok(id) = r.peel_to_id()
            && repo.find_commit(id.detach()).is_ok()
        {
            tips.push(id.detach());
        }
    }
    tips.sort();
    tips.dedup();
    if tips.is_empty() {
        visit(GitEvent::Commits(0));
        return Ok(());
    }
    let mut commits = Vec::new();
    for info in repo.rev_walk(tips).all().map_err(|e| err(&e))? {
        let info = info.map_err(|e| err(&e))?;
        let commit = repo.find_commit(info.id).map_err(|e| err(&e))?;
        let time = commit.time().map(|t| t.seconds).unwrap_or(0);
        commits.push((time, info.id));
    }
    // Oldest first; the walk lists children before parents, so reverse before the stable sort.
    commits.reverse();
    commits.sort_by_key(|(time, _)| *time);
    visit(GitEvent::Commits(commits.len() as u64));

    let mut seen_trees = HashSet::new();
    let mut seen_blobs = HashSet::new();
    for (time, id) in commits {
        let commit = repo.find_commit(id).map_err(|e| err(&e))?;
        let (author, email) = match commit.author() {
            Ok(sig) => (sig.name.to_string(), sig.email.to_string()),
            Err(_) => (String::new(), String::new()),
        };
        let info = CommitInfo {
            id: id.to_string(),
            author,
            email,
            time,
        };
        let tree = commit.tree_id().map_err(|e| err(&e))?.detach();
        let mut blobs = Vec::new();
        collect_blobs(
            &repo,
            tree,
            "",
            &mut seen_trees,
            &mut Some(&mut seen_blobs),
            &mut blobs,
        )
        .map_err(|e| err(&e))?;
        for (blob_path, oid) in blobs {
            match load_blob(&repo, oid, max_size).map_err(|e| err(&e))? {
                Some(data) => visit(GitEvent::Blob {
                    path: &blob_path,
                    data: &data,
                    commit: &info,
                }),
                None => visit(GitEvent::Skipped),
            }
        }
        visit(GitEvent::CommitDone);
    }

    if let Some(head) = head {
        let tree = repo
            .find_commit(head)
            .and_then(|c| c.tree_id().map(|t| t.detach()))
            .map_err(|e| err(&e))?;
        let mut blobs = Vec::new();
        collect_blobs(&repo, tree, "", &mut HashSet::new(), &mut None, &mut blobs)
            .map_err(|e| err(&e))?;
        for (blob_path, oid) in blobs {
            let lower = blob_path.to_ascii_lowercase();
            if !MANIFEST_EXTENSIONS.iter().any(|e| lower.ends_with(e)) {
                continue;
            }
            if let Some(data) = load_blob(&repo, oid, max_size).map_err(|e| err(&e))? {
                visit(GitEvent::Head {
                    path: &blob_path,
                    data: &data,
                });
            }
        }
    }
    Ok(())
}

/// The blob's bytes, or `None` when it is larger than `max_size` (checked from the header,
/// before loading).
fn load_blob(
    repo: &gix::Repository,
    oid: ObjectId,
    max_size: u64,
) -> std::result::Result<Option<Vec<u8>>, gix::Error> {
    if repo.find_header(oid)?.size() > max_size {
        return Ok(None);
    }
    Ok(Some(repo.find_object(oid)?.detach().data))
}

/// Appends (path, blob id) for blobs under `tree` not seen before. Trees already seen are
/// skipped whole: every blob in them was listed when they were first seen.
fn collect_blobs(
    repo: &gix::Repository,
    tree: ObjectId,
    prefix: &str,
    seen_trees: &mut HashSet<ObjectId>,
    seen_blobs: &mut Option<&mut HashSet<ObjectId>>,
    out: &mut Vec<(String, ObjectId)>,
) -> std::result::Result<(), gix::Error> {
    if seen_blobs.is_some() && !seen_trees.insert(tree) {
        return Ok(());
    }
    let tree_obj = repo.find_tree(tree)?;
    let mut subtrees = Vec::new();
    for entry in tree_obj.iter() {
        let Ok(entry) = entry else { continue };
        let name = entry.inner.filename.to_string();
        let path = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let oid = entry.inner.oid.to_owned();
        if entry.inner.mode.is_tree() {
            subtrees.push((path, oid));
        } else if entry.inner.mode.is_blob() {
            let new = match seen_blobs {
                Some(seen) => seen.insert(oid),
                None => true,
            };
            if new {
                out.push((path, oid));
            }
        }
    }
    for (path, oid) in subtrees {
        collect_blobs(repo, oid, &path, seen_trees, seen_blobs, out)?;
    }
    Ok(())
}
