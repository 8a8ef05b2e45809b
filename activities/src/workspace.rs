//! Workspace files: validating where they would land and packing them for upload.
//!
//! This module owns the rule that a caller's file lands inside `/workspace` and nowhere else,
//! and the uncompressed tar the worker builds itself (regular files and their directories only:
//! no links, no device nodes, no absolute or `..` names can ever be in it). It does not own the
//! transfer into the sandbox.

use crate::error::Failure;
use ae_workflows_spec::WorkspaceFile;
use std::collections::BTreeSet;

/// The sandbox directory every file lands under.
pub const WORKSPACE: &str = "/workspace";

/// A file whose path has been checked: `rel` is relative to `/workspace`, normalised, non-empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedFile {
    /// Normalised path relative to `/workspace`, components separated by `/`.
    pub rel: String,
    /// The bytes to write.
    pub content: Vec<u8>,
}

/// Validates every path and the size caps, in input order. The first problem is an
/// InvalidInput naming the file's index and what is wrong.
pub fn check_files(
    files: &[WorkspaceFile],
    max_file_bytes: usize,
    max_total_bytes: usize,
) -> Result<Vec<CheckedFile>, Failure> {
    let mut total = 0usize;
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(files.len());
    for (i, f) in files.iter().enumerate() {
        let rel = normalise(&f.path).map_err(|why| {
            Failure::invalid_input(format!("workspaceFiles[{i}].path {:?}: {why}", f.path))
        })?;
        let size = f.content.len();
        if size > max_file_bytes {
            return Err(Failure::invalid_input(format!(
                "workspaceFiles[{i}] ({rel}) is {size} bytes, over the {max_file_bytes}-byte limit per file"
            )));
        }
        total += size;
        if total > max_total_bytes {
            return Err(Failure::invalid_input(format!(
                "workspaceFiles total {total} bytes exceeds the {max_total_bytes}-byte limit"
            )));
        }
        if !seen.insert(rel.clone()) {
            return Err(Failure::invalid_input(format!(
                "workspaceFiles[{i}] ({rel}) is given twice"
            )));
        }
        out.push(CheckedFile {
            rel,
            content: f.content.as_bytes().to_vec(),
        });
    }
    // A file may not also be a directory of another file (`a` and `a/b`).
    for f in &out {
        let prefix = format!("{}/", f.rel);
        if let Some(other) = seen.range(prefix.clone()..).next()
            && other.starts_with(&prefix)
        {
            return Err(Failure::invalid_input(format!(
                "workspaceFiles: {} is both a file and the directory of {other}",
                f.rel
            )));
        }
    }
    Ok(out)
}

/// Maps a caller's path to a path relative to `/workspace`, or says why it cannot be one.
pub fn normalise(path: &str) -> Result<String, &'static str> {
    if path.is_empty() {
        return Err("is empty");
    }
    if path.contains('\0') {
        return Err("contains a NUL byte");
    }
    if path.len() > 4096 {
        return Err("is longer than 4096 bytes");
    }
    let rel = if let Some(abs) = path.strip_prefix('/') {
        match abs.strip_prefix("workspace") {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
            _ => return Err("is absolute and not under /workspace"),
        }
    } else {
        path
    };
    let mut parts = Vec::new();
    for part in rel.split('/') {
        match part {
            "" | "." => continue,
            ".." => return Err("contains '..', which could leave /workspace"),
            p if p.len() > 255 => return Err("has a component longer than 255 bytes"),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err("names /workspace itself, not a file in it");
    }
    Ok(parts.join("/"))
}

/// An uncompressed tar of the files and their parent directories, owned by `uid:gid`.
pub fn pack(files: &[CheckedFile], uid: u64, gid: u64) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut dirs = BTreeSet::new();
    for f in files {
        let mut acc = String::new();
        let comps: Vec<&str> = f.rel.split('/').collect();
        for dir in &comps[..comps.len() - 1] {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(dir);
            if dirs.insert(acc.clone()) {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_uid(uid);
                h.set_gid(gid);
                h.set_size(0);
                builder.append_data(&mut h, format!("{acc}/"), std::io::empty())?;
            }
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_size(f.content.len() as u64);
        builder.append_data(&mut h, &f.rel, f.content.as_slice())?;
    }
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> WorkspaceFile {
        WorkspaceFile {
            path: path.into(),
            content: "x".into(),
        }
    }

    #[test]
    fn accepts_relative_and_absolute_workspace_paths() {
        assert_eq!(normalise("package.json").unwrap(), "package.json");
        assert_eq!(
            normalise("/workspace/package.json").unwrap(),
            "package.json"
        );
        assert_eq!(normalise("./src//a.ts").unwrap(), "src/a.ts");
        assert_eq!(normalise("/workspace/src/./b.ts").unwrap(), "src/b.ts");
    }

    #[test]
    fn refuses_paths_that_leave_the_workspace() {
        for bad in [
            "../etc/passwd",
            "a/../../x",
            "/etc/passwd",
            "/workspace/../etc/shadow",
            "/workspacefoo/a",
            "/",
            "/workspace",
            "",
            ".",
            "a\0b",
        ] {
            assert!(normalise(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn check_files_names_the_offending_index() {
        let err = check_files(&[file("ok.txt"), file("../x")], 10, 100).unwrap_err();
        assert_eq!(err.kind, ae_workflows_spec::FailureType::InvalidInput);
        assert!(err.message.contains("workspaceFiles[1]"), "{}", err.message);
    }

    #[test]
    fn check_files_enforces_size_caps() {
        let big = WorkspaceFile {
            path: "big".into(),
            content: "y".repeat(11),
        };
        assert!(check_files(&[big], 10, 100).is_err());
        let many: Vec<_> = (0..5)
            .map(|i| WorkspaceFile {
                path: format!("f{i}"),
                content: "z".repeat(10),
            })
            .collect();
        assert!(check_files(&many, 10, 40).is_err());
        assert!(check_files(&many, 10, 50).is_ok());
    }

    #[test]
    fn check_files_refuses_file_that_is_also_a_directory() {
        assert!(check_files(&[file("a"), file("a/b")], 10, 100).is_err());
        assert!(check_files(&[file("a/b"), file("a")], 10, 100).is_err());
        assert!(check_files(&[file("a"), file("a.b")], 10, 100).is_ok());
    }

    #[test]
    fn pack_holds_only_regular_files_and_directories() {
        let files = check_files(&[file("src/lib/a.ts"), file("b.txt")], 10, 100).unwrap();
        let bytes = pack(&files, 65534, 65534).unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut names = Vec::new();
        for e in archive.entries().unwrap() {
            let e = e.unwrap();
            let t = e.header().entry_type();
            assert!(t.is_file() || t.is_dir());
            names.push(e.path().unwrap().to_string_lossy().into_owned());
        }
        assert_eq!(names, ["src/", "src/lib/", "src/lib/a.ts", "b.txt"]);
    }
}
