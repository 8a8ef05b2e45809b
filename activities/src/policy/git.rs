//! git: force pushes in every spelling, pushes to and deletions of protected branches, and
//! shell commands smuggled through `-c` configuration (aliases, pagers, editors, ssh).

use super::analyze::{Analyzer, Field, State};
use super::effects::run_script;

/// Branches that must not be pushed to, force-pushed or deleted.
pub const PROTECTED: &[&str] = &["main", "master"];

/// Configuration keys whose value git runs as a shell command.
fn runs_shell(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.starts_with("alias.")
        || matches!(
            k.as_str(),
            "core.pager"
                | "core.editor"
                | "core.sshcommand"
                | "core.fsmonitor"
                | "core.hookspath"
                | "sequence.editor"
                | "diff.external"
                | "credential.helper"
                | "gpg.program"
                | "pager.log"
                | "pager.diff"
                | "pager.show"
                | "uploadpack.packobjectshook"
        )
        || k.starts_with("pager.")
        || k.ends_with(".textconv")
        || k.ends_with(".command")
        || k.ends_with(".cmd")
        || k.ends_with(".clean")
        || k.ends_with(".smudge")
        || k.ends_with(".process")
}

pub fn git(az: &mut Analyzer<'_>, st: &mut State, args: &[Field]) {
    let mut i = 0;
    let mut aliases: Vec<(String, String)> = Vec::new();
    let mut force_config = false;
    while i < args.len() {
        let a = args[i].s.as_str();
        if !a.starts_with('-') {
            break;
        }
        if a == "-c" || a == "--config-env" {
            if let Some(kv) = args.get(i + 1) {
                config(az, st, &kv.s, &mut aliases, &mut force_config);
            }
            i += 2;
            continue;
        }
        if let Some(kv) = a.strip_prefix("-c") {
            config(az, st, kv, &mut aliases, &mut force_config);
        }
        if matches!(
            a,
            "-C" | "--git-dir"
                | "--work-tree"
                | "--namespace"
                | "--exec-path"
                | "--super-prefix"
                | "--list-cmds"
        ) {
            i += 1;
        }
        i += 1;
    }
    let mut rest: Vec<Field> = args[i.min(args.len())..].to_vec();
    // Non-shell aliases expand in place (`-c alias.p=push`).
    for _ in 0..4 {
        let Some(sub) = rest.first().map(|f| f.s.clone()) else {
            return;
        };
        match aliases.iter().find(|(k, _)| *k == sub) {
            Some((_, v)) if !v.starts_with('!') => {
                let mut words: Vec<Field> = v.split_whitespace().map(Field::lit).collect();
                words.extend(rest.drain(1..));
                rest = words;
            }
            _ => break,
        }
    }
    let Some(sub) = rest.first().map(|f| f.s.clone()) else {
        return;
    };
    let sargs = &rest[1..];
    match sub.as_str() {
        "push" => push(az, sargs, force_config),
        "config" => {
            let ops: Vec<&str> = sargs
                .iter()
                .map(|f| f.s.as_str())
                .filter(|s| !s.starts_with('-'))
                .collect();
            if ops.len() >= 2 {
                let kv = format!("{}={}", ops[0], ops[1]);
                let mut dummy = Vec::new();
                let mut f = false;
                config(az, st, &kv, &mut dummy, &mut f);
                if f {
                    az.hit("git-force-push", "configures a forced push refspec");
                }
            }
        }
        "branch" => {
            let del = sargs.iter().any(|a| {
                matches!(a.s.as_str(), "-d" | "-D" | "--delete")
                    || (a.s.starts_with('-') && !a.s.starts_with("--") && a.s.contains(['d', 'D']))
            });
            let force_move = sargs
                .iter()
                .any(|a| a.s == "-M" || a.s == "-f" || a.s == "--force" || a.s == "-C");
            let names: Vec<&str> = sargs
                .iter()
                .map(|f| f.s.as_str())
                .filter(|s| !s.starts_with('-'))
                .collect();
            if del
                && names
                    .iter()
                    .any(|n| is_protected(n) || n.ends_with("/main") || n.ends_with("/master"))
            {
                az.hit(
                    "git-delete-branch",
                    "deletes a protected branch (main/master)",
                );
            }
            if force_move && names.iter().skip(1).any(|n| is_protected(n)) {
                az.hit(
                    "git-delete-branch",
                    "overwrites a protected branch (main/master)",
                );
            }
            if del
                && sargs.iter().any(|a| a.s == "-r" || a.s == "--remotes")
                && !names.iter().any(|n| is_protected(n))
            {
                // Deleting remote-tracking refs locally is harmless.
            }
        }
        "update-ref" => {
            if sargs.iter().any(|a| a.s == "-d")
                && sargs.iter().any(|a| is_protected(ref_name(&a.s)))
            {
                az.hit("git-delete-branch", "deletes a protected branch ref");
            }
        }
        "filter-branch" | "filter-repo" => {
            az.hit("git-history-rewrite", "rewrites the repository's history");
        }
        _ => {
            if let Some((_, v)) = aliases.iter().find(|(k, _)| *k == sub) {
                let _ = v;
            }
        }
    }
}

fn config(
    az: &mut Analyzer<'_>,
    st: &mut State,
    kv: &str,
    aliases: &mut Vec<(String, String)>,
    force: &mut bool,
) {
    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
    let kl = k.to_ascii_lowercase();
    if let Some(name) = kl.strip_prefix("alias.") {
        aliases.push((name.to_string(), v.to_string()));
        if let Some(cmd) = v.strip_prefix('!') {
            run_script(az, st, &Field::lit(cmd));
        }
        return;
    }
    if kl.starts_with("remote.") && kl.ends_with(".push") && v.starts_with('+') {
        *force = true;
    }
    if kl == "push.default" && v == "mirror" {
        *force = true;
    }
    if kl.starts_with("remote.") && kl.ends_with(".mirror") && v == "true" {
        *force = true;
    }
    if runs_shell(&kl) && !v.is_empty() {
        run_script(az, st, &Field::lit(v));
    }
}

pub fn is_protected(name: &str) -> bool {
    let n = ref_name(name);
    PROTECTED.contains(&n)
}

fn ref_name(r: &str) -> &str {
    r.strip_prefix("refs/heads/")
        .or_else(|| r.strip_prefix("refs/remotes/origin/"))
        .or_else(|| r.strip_prefix("heads/"))
        .unwrap_or(r)
}

fn push(az: &mut Analyzer<'_>, args: &[Field], force_config: bool) {
    let valued = [
        "--repo",
        "--receive-pack",
        "--exec",
        "-o",
        "--push-option",
        "--signed",
        "--recurse-submodules",
    ];
    let mut force = force_config;
    let mut delete = false;
    let mut all = false;
    let mut ops: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].s.as_str();
        if a == "--" {
            ops.extend(args[i + 1..].iter().map(|f| f.s.as_str()));
            break;
        }
        if a.starts_with("--") {
            let name = a.split('=').next().unwrap_or(a);
            match name {
                "--force" | "--force-with-lease" | "--force-if-includes" | "--mirror" => {
                    force = true
                }
                "--delete" => delete = true,
                "--all" | "--branches" => all = true,
                "--prune" => delete = true,
                _ => {}
            }
            if valued.contains(&a) && !a.contains('=') {
                i += 1;
            }
        } else if a.starts_with('-') && a.len() > 1 {
            if a.contains('f') {
                force = true;
            }
            if a.contains('d') {
                delete = true;
            }
            if a == "-o" {
                i += 1;
            }
        } else {
            ops.push(a);
        }
        i += 1;
    }
    if force {
        az.hit("git-force-push", "a push that rewrites remote history");
    }
    let remote = ops.first().copied().unwrap_or("");
    let refspecs = if ops.len() > 1 { &ops[1..] } else { &[][..] };
    if remote.contains("heroku")
        || remote.contains("dokku")
        || remote == "production"
        || remote == "prod"
    {
        az.hit("production-deploy", "a push to a deploy remote deploys");
        if !force && !delete {
            return;
        }
    }
    for r in refspecs {
        if r.starts_with('+') || r.contains(":+") {
            az.hit("git-force-push", "a +refspec forces the push");
        }
        let r = r.trim_start_matches('+');
        let (src, dst) = match r.split_once(':') {
            Some((s, d)) => (s, d),
            None => (r, r),
        };
        let dst_name = ref_name(dst);
        if src.is_empty() || delete {
            if is_protected(dst_name) {
                az.hit(
                    "git-delete-branch",
                    "deletes a protected remote branch (main/master)",
                );
            } else if !dst_name.starts_with("refs/tags/") && !dst_name.is_empty() {
                az.hit("git-delete-remote-branch", "deletes a remote branch");
            }
            continue;
        }
        if is_protected(dst_name) {
            az.hit("git-push-protected-branch", "a push to main or master");
        }
    }
    if all && !delete {
        az.hit(
            "git-push-protected-branch",
            "pushing every branch includes main/master",
        );
    }
}
