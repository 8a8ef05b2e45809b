//! Workspace files: validating where they would land and packing them for upload.
//!
//! This module owns the rule that a caller's file lands inside `/workspace` and nowhere else,
//! and the uncompressed tar the worker builds itself (regular files and their directories only:
//! no links, no device nodes, no absolute or `..` names can ever be in it). It does not own the
//! transfer into the sandbox.

use crate::error::Failure;
use ae_workflows_spec::WorkspaceFile;
use std::collections::{BTreeSet, HashSet};

/// The sandbox directory every file lands under.
pub const WORKSPACE: &str = "/workspace";

/// At most this many workspace files per request.
pub const MAX_FILES: usize = 1000;
/// At most this many components (`a/b/c` has 3) in one path.
pub const MAX_PATH_COMPONENTS: usize = 64;
/// At most this many bytes in one path, as the caller wrote it.
pub const MAX_PATH_BYTES: usize = 1024;
/// At most this many distinct directories across all files. Each becomes a tar entry, so the
/// cap bounds the upload's size and the worker's memory whatever the paths look like.
pub const MAX_DIRECTORIES: usize = 4096;

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
///
/// Every limit is checked here, before anything is charged or packed, and the check itself
/// allocates no more than the normalised paths: a hostile list (thousands of files, paths
/// thousands of directories deep) is refused in time and memory linear in the input.
pub fn check_files(
    files: &[WorkspaceFile],
    max_file_bytes: usize,
    max_total_bytes: usize,
) -> Result<Vec<CheckedFile>, Failure> {
    if files.len() > MAX_FILES {
        return Err(Failure::invalid_input(format!(
            "workspaceFiles has {} files, over the limit of {MAX_FILES}",
            files.len()
        )));
    }
    let mut total = 0usize;
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(files.len());
    for (i, f) in files.iter().enumerate() {
        let rel = normalise(&f.path).map_err(|why| {
            Failure::invalid_input(format!(
                "workspaceFiles[{i}].path {:?}: {why}",
                shorten(&f.path)
            ))
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
    let dirs = directories(&out).count();
    if dirs > MAX_DIRECTORIES {
        return Err(Failure::invalid_input(format!(
            "workspaceFiles create {dirs} directories, over the limit of {MAX_DIRECTORIES}"
        )));
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

/// At most the first 96 characters of a caller's path, for error messages.
fn shorten(path: &str) -> String {
    match path.char_indices().nth(96) {
        Some((i, _)) => format!("{}…", &path[..i]),
        None => path.to_string(),
    }
}

/// Maps a caller's path to a path relative to `/workspace`, or says why it cannot be one.
pub fn normalise(path: &str) -> Result<String, &'static str> {
    if path.is_empty() {
        return Err("is empty");
    }
    if path.contains('\0') {
        return Err("contains a NUL byte");
    }
    if path.len() > MAX_PATH_BYTES {
        return Err("is longer than 1024 bytes");
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
        if parts.len() > MAX_PATH_COMPONENTS {
            return Err("has more than 64 components");
        }
    }
    if parts.is_empty() {
        return Err("names /workspace itself, not a file in it");
    }
    Ok(parts.join("/"))
}

/// The distinct parent directories of `files` (`a`, `a/b` for `a/b/c`), each once, parents
/// first, as slices of the files' own paths (nothing is copied).
fn directories(files: &[CheckedFile]) -> impl Iterator<Item = &str> {
    let mut seen = HashSet::new();
    files.iter().flat_map(move |f| {
        let dirs: Vec<&str> = f
            .rel
            .match_indices('/')
            .map(|(i, _)| &f.rel[..i])
            .filter(|d| seen.insert(*d))
            .collect();
        dirs
    })
}

/// An uncompressed tar of the files and their parent directories, owned by `uid:gid`.
pub fn pack(files: &[CheckedFile], uid: u64, gid: u64) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut emitted = HashSet::new();
    for f in files {
        for (i, _) in f.rel.match_indices('/') {
            let dir = &f.rel[..i];
            if emitted.insert(dir) {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_uid(uid);
                h.set_gid(gid);
                h.set_size(0);
                builder.append_data(&mut h, format!("{dir}/"), std::io::empty())?;
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
    fn check_files_refuses_path_bombs_quickly() {
        // 400 files 1,000 directories deep: refused by the component limit before any
        // directory is counted or packed.
        let deep: Vec<_> = (0..400)
            .map(|i| WorkspaceFile {
                path: format!("{}f{i}", "d/".repeat(1000)),
                content: String::new(),
            })
            .collect();
        let err = check_files(&deep, 10, 100).unwrap_err();
        assert!(
            err.message.contains("longer than 1024 bytes"),
            "{}",
            err.message
        );
        assert!(err.message.len() < 200, "the message quotes the whole path");
        let deep = file(&"d/".repeat(65));
        let err = check_files(&[deep], 10, 100).unwrap_err();
        assert!(
            err.message.contains("more than 64 components"),
            "{}",
            err.message
        );
        let long = WorkspaceFile {
            path: "a".repeat(200) + "/" + &"b".repeat(200) + "/" + &"c".repeat(700),
            content: String::new(),
        };
        assert!(check_files(&[long], 10, 100).is_err());
        let many: Vec<_> = (0..=MAX_FILES).map(|i| file(&format!("f{i}"))).collect();
        let err = check_files(&many, 10, 1 << 20).unwrap_err();
        assert!(err.message.contains("1001 files"), "{}", err.message);
        // Within every per-path limit, but too many distinct directories overall.
        let wide: Vec<_> = (0..200)
            .map(|i| file(&format!("{}f", format!("d{i}/").repeat(30))))
            .collect();
        let err = check_files(&wide, 10, 1 << 20).unwrap_err();
        assert!(err.message.contains("directories"), "{}", err.message);
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
