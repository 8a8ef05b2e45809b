//! Package scripts and task runners: `npm|pnpm|yarn|bun run X` is judged by the script X in
//! the workspace's package.json (with its pre/post scripts and install hooks), `make X` by
//! the Makefile's recipe; without them, by what the name says.

use super::analyze::{Analyzer, Cwd, Field, Flow, State, Taint, normalise_ws_path};

fn dir_of(st: &State) -> Option<String> {
    match &st.cwd {
        Cwd::At(p) => p
            .strip_prefix("/workspace")
            .map(|r| normalise_ws_path(r.trim_start_matches('/'))),
        Cwd::Unknown => None,
    }
}

/// The `scripts` of the package.json files to consider: the one in the working directory
/// (or `--prefix`/`-C` dir), else every package.json in the workspace.
fn scripts(az: &Analyzer<'_>, st: &State, dir: Option<&str>, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let here = dir.map(normalise_ws_path).or_else(|| dir_of(st));
    let want = here.map(|d| {
        if d.is_empty() {
            "package.json".to_string()
        } else {
            format!("{d}/package.json")
        }
    });
    let mut files: Vec<&str> = az
        .ctx
        .files
        .iter()
        .filter(|(p, _)| Some(normalise_ws_path(p)) == want)
        .map(|(_, c)| *c)
        .collect();
    if files.is_empty() {
        files = az
            .ctx
            .files
            .iter()
            .filter(|(p, _)| normalise_ws_path(p).ends_with("package.json"))
            .map(|(_, c)| *c)
            .collect();
    }
    for f in files {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(f)
            && let Some(s) = v
                .get("scripts")
                .and_then(|s| s.get(name))
                .and_then(|s| s.as_str())
        {
            out.push(s.to_string());
        }
    }
    out
}

fn has_package_json(az: &Analyzer<'_>) -> bool {
    az.ctx
        .files
        .iter()
        .any(|(p, _)| normalise_ws_path(p).ends_with("package.json"))
}

/// Names that say "deploy" when the script or target itself cannot be read.
pub fn risky_name(name: &str) -> Option<&'static str> {
    let l = name.to_ascii_lowercase();
    let toks: Vec<&str> = l.split([':', '-', '_', '.', '/']).collect();
    let any = |ws: &[&str]| toks.iter().any(|t| ws.contains(t));
    if any(&["deploy", "release", "publish", "ship", "promote", "rollout"]) {
        return Some("production-deploy");
    }
    if any(&["destroy", "nuke", "teardown", "wipe", "purge", "obliterate"]) {
        return Some("risky-script-name");
    }
    None
}

fn follow_script(
    az: &mut Analyzer<'_>,
    st: &mut State,
    dir: Option<&str>,
    name: &str,
    extra: &[Field],
) {
    let key = format!("script:{}:{name}", dir.unwrap_or(""));
    if !az.followed.insert(key) {
        return;
    }
    let mut found = false;
    for (phase, n) in [
        ("pre", format!("pre{name}")),
        ("", name.to_string()),
        ("post", format!("post{name}")),
    ] {
        for body in scripts(az, st, dir, &n) {
            found = true;
            let mut text = body;
            if phase.is_empty() {
                for e in extra {
                    text.push(' ');
                    text.push_str(&super::effects::shell_quote(&e.s));
                }
            }
            let mut inner = st.clone();
            az.script(&mut inner, &text);
        }
    }
    if !found && let Some(rule) = risky_name(name) {
        az.hit(
                rule,
                format!("package script '{name}' is not in the workspace and its name suggests a deploy or teardown"),
            );
    }
}

const NPM_BUILTINS: &[&str] = &[
    "install",
    "i",
    "ci",
    "add",
    "remove",
    "rm",
    "uninstall",
    "un",
    "update",
    "up",
    "upgrade",
    "outdated",
    "ls",
    "list",
    "ll",
    "la",
    "audit",
    "init",
    "create",
    "info",
    "view",
    "v",
    "show",
    "pack",
    "link",
    "ln",
    "unlink",
    "prune",
    "dedupe",
    "ddp",
    "why",
    "explain",
    "config",
    "c",
    "set",
    "get",
    "cache",
    "doctor",
    "fund",
    "help",
    "login",
    "logout",
    "whoami",
    "version",
    "-v",
    "--version",
    "search",
    "s",
    "root",
    "prefix",
    "bin",
    "rebuild",
    "rb",
    "shrinkwrap",
    "store",
    "import",
    "env",
    "setup",
    "patch",
    "patch-commit",
    "licenses",
    "fetch",
    "install-test",
    "it",
    "cit",
    "clean-install",
    "query",
    "sbom",
    "pkg",
    "workspaces",
    "plugin",
    "set-script",
    "node",
    "dlx",
    "exec",
    "x",
    "run",
    "run-script",
    "rum",
    "urn",
    "test",
    "t",
    "tst",
    "start",
    "stop",
    "restart",
    "publish",
    "unpublish",
    "deprecate",
    "dist-tag",
    "owner",
    "team",
    "access",
    "token",
    "profile",
    "hook",
    "org",
    "star",
    "unstar",
    "stars",
    "adduser",
    "edit",
    "explore",
    "docs",
    "bugs",
    "repo",
    "completion",
    "diff",
    "hash-object",
    "npm",
    "constraints",
    "dedupe",
    "why",
    "workspace",
    "interactive",
    "tag",
    "global",
    "check",
    "autoclean",
    "generate-lock-entry",
    "policies",
    "self-update",
    "upgrade-interactive",
    "recursive",
    "-r",
    "-w",
    "import",
    "server",
    "audit-fix",
    "rebuild",
    "licenses",
    "approve-builds",
    "ignored-builds",
    "cat-file",
    "cat-index",
    "find-hash",
];

pub fn package_manager(az: &mut Analyzer<'_>, st: &mut State, n: &str, args: &[Field]) {
    if n == "corepack" {
        if let Some(first) = args.first()
            && matches!(first.s.as_str(), "npm" | "pnpm" | "yarn")
        {
            let pm = first.s.clone();
            return package_manager(az, st, &pm, &args[1..]);
        }
        return;
    }
    let valued = [
        "--prefix",
        "-C",
        "--dir",
        "--cwd",
        "-w",
        "--workspace",
        "--filter",
        "-F",
        "--reporter",
        "--loglevel",
        "--registry",
        "--userconfig",
        "--cache",
        "--store-dir",
        "--config",
        "--network-concurrency",
        "--workspace-concurrency",
        "--package",
        "-p",
        "--tag",
        "--otp",
        "--access",
    ];
    let mut dir: Option<String> = None;
    let mut i = 0;
    let mut ops: Vec<Field> = Vec::new();
    while i < args.len() {
        let a = args[i].s.as_str();
        if a == "--" {
            ops.extend(args[i..].iter().cloned());
            break;
        }
        if a.starts_with('-') && ops.is_empty()
            || (a.starts_with('-')
                && ops.len() == 1
                && matches!(
                    ops[0].s.as_str(),
                    "run" | "run-script" | "exec" | "dlx" | "x"
                ))
        {
            if matches!(a, "--prefix" | "-C" | "--dir" | "--cwd") {
                dir = args.get(i + 1).map(|f| f.s.clone());
            } else if let Some(d) = a
                .strip_prefix("--prefix=")
                .or_else(|| a.strip_prefix("--dir="))
                .or_else(|| a.strip_prefix("--cwd="))
            {
                dir = Some(d.to_string());
            }
            if valued.contains(&a) && !a.contains('=') {
                i += 1;
            }
            i += 1;
            continue;
        }
        ops.extend(args[i..].iter().cloned());
        break;
    }
    let dir = dir.as_deref();
    let sub = ops.first().map(|f| f.s.clone()).unwrap_or_default();
    let rest: Vec<Field> = ops.get(1..).map(|r| r.to_vec()).unwrap_or_default();
    // Workspaces: `yarn workspace W run X`, `pnpm -r run X`.
    if n == "yarn" && sub == "workspace" && rest.len() >= 2 {
        return package_manager(az, st, n, &rest[1..]);
    }
    if n == "yarn"
        && sub == "workspaces"
        && rest
            .first()
            .is_some_and(|f| f.s == "foreach" || f.s == "run")
    {
        let k = rest
            .iter()
            .position(|f| f.s == "run")
            .map(|k| k + 1)
            .unwrap_or(1);
        let rest2: Vec<Field> = rest[k.min(rest.len())..]
            .iter()
            .filter(|f| !f.s.starts_with('-'))
            .cloned()
            .collect();
        if let Some(s) = rest2.first() {
            follow_script(az, st, dir, &s.s.clone(), &rest2[1..]);
        }
        return;
    }
    let run_args = |rest: &[Field]| -> Vec<Field> {
        let mut r: Vec<Field> = rest.to_vec();
        while r
            .first()
            .is_some_and(|f| f.s.starts_with('-') && f.s != "--")
        {
            let f = r.remove(0);
            if valued.contains(&f.s.as_str()) && !r.is_empty() {
                r.remove(0);
            }
        }
        r
    };
    match sub.as_str() {
        "run" | "run-script" | "rum" | "urn" => {
            let r = run_args(&rest);
            if let Some(s) = r.first() {
                let extra: Vec<Field> = r[1..].iter().filter(|f| f.s != "--").cloned().collect();
                follow_script(az, st, dir, &s.s.clone(), &extra);
            }
        }
        "test" | "t" | "tst" | "start" | "stop" | "restart" => {
            let name = match sub.as_str() {
                "t" | "tst" => "test",
                s => s,
            };
            follow_script(az, st, dir, name, &[]);
        }
        "install" | "i" | "ci" | "add" | "" | "clean-install" | "install-test" | "it" | "cit"
        | "rebuild" => {
            if sub != "add" {
                for hook in ["preinstall", "install", "postinstall", "prepare"] {
                    for body in scripts(az, st, dir, hook) {
                        let mut inner = st.clone();
                        az.script(&mut inner, &body);
                    }
                }
            }
            if matches!(sub.as_str(), "install-test" | "it" | "cit") {
                follow_script(az, st, dir, "test", &[]);
            }
        }
        "exec" | "x" | "dlx" => {
            let r = run_args(&rest);
            if !r.is_empty() {
                let v: Vec<Field> = r.into_iter().filter(|f| f.s != "--").collect();
                let mut inner = st.clone();
                let mut v2 = v.clone();
                v2[0] = Field::lit(&super::effects::bin_of_package(&v[0].s));
                az.run(&mut inner, v2, Flow::Unknown(Taint::Clean));
            }
        }
        "publish" | "unpublish" | "deprecate" | "owner" => {
            if !args.iter().any(|a| a.s == "--dry-run") {
                az.hit(
                    "package-publish",
                    format!("{n} {sub} publishes or changes a published package"),
                );
            }
            for hook in [
                "prepublishOnly",
                "prepublish",
                "prepack",
                "prepare",
                "postpublish",
            ] {
                for body in scripts(az, st, dir, hook) {
                    let mut inner = st.clone();
                    az.script(&mut inner, &body);
                }
            }
        }
        "dist-tag" => {
            if rest.first().is_some_and(|f| f.s == "add" || f.s == "rm") {
                az.hit("package-publish", "changes a published package's tags");
            }
        }
        "npm" if n == "yarn" => {
            if rest.first().is_some_and(|f| f.s == "publish") {
                az.hit("package-publish", "yarn npm publish publishes a package");
            }
        }
        "deploy" if n == "pnpm" => {
            // `pnpm deploy` copies a workspace package to a directory; a script of that
            // name is judged anyway (the caller may mean it).
            if !scripts(az, st, dir, "deploy").is_empty() {
                follow_script(az, st, dir, "deploy", &[]);
            }
        }
        s if NPM_BUILTINS.contains(&s) => {
            // yarn/pnpm/bun run a script that shadows a command name; judge it too.
            if n != "npm" && !scripts(az, st, dir, s).is_empty() {
                follow_script(az, st, dir, s, &[]);
            }
        }
        s => {
            // `yarn X`, `pnpm X`, `bun X`: a script if there is one, else a binary.
            if n == "npm" {
                return;
            }
            let has_script = !scripts(az, st, dir, s).is_empty();
            if has_script {
                let extra: Vec<Field> = rest.iter().filter(|f| f.s != "--").cloned().collect();
                follow_script(az, st, dir, s, &extra);
            } else if n == "bun" && (s.ends_with(".ts") || s.ends_with(".js") || s.contains('/')) {
                // `bun file.ts`
            } else {
                let mut v = vec![Field::lit(s)];
                v.extend(rest.iter().cloned());
                let mut inner = st.clone();
                let before = az.hits.len();
                az.run(&mut inner, v, Flow::Unknown(Taint::Clean));
                if az.hits.len() == before
                    && !has_package_json(az)
                    && let Some(rule) = risky_name(s)
                {
                    az.hit(rule, format!("package script '{s}' is not in the workspace and its name suggests a deploy or teardown"));
                }
            }
        }
    }
}

/// Make-like runners.
pub fn make(az: &mut Analyzer<'_>, st: &mut State, n: &str, args: &[Field]) {
    let valued = [
        "-C",
        "-f",
        "--file",
        "--makefile",
        "--directory",
        "-I",
        "-o",
        "-W",
        "-l",
        "--justfile",
        "-d",
        "--dir",
        "-t",
        "--taskfile",
        "-j",
        "--jobs",
    ];
    let mut dir: Option<String> = None;
    let mut file: Option<String> = None;
    let mut targets: Vec<String> = Vec::new();
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].s.as_str();
        if matches!(a, "-C" | "--directory" | "-d" | "--dir") {
            dir = args.get(i + 1).map(|f| f.s.clone());
            i += 2;
            continue;
        }
        if matches!(
            a,
            "-f" | "--file" | "--makefile" | "--justfile" | "-t" | "--taskfile"
        ) {
            file = args.get(i + 1).map(|f| f.s.clone());
            i += 2;
            continue;
        }
        if a == "-j" || a == "--jobs" {
            if args
                .get(i + 1)
                .is_some_and(|f| f.s.chars().all(|c| c.is_ascii_digit()))
            {
                i += 1;
            }
            i += 1;
            continue;
        }
        if a.starts_with('-') {
            if valued.contains(&a) {
                i += 1;
            }
            i += 1;
            continue;
        }
        if let Some((k, v)) = a.split_once('=') {
            vars.push((k.to_string(), v.to_string()));
        } else {
            targets.push(a.to_string());
        }
        i += 1;
    }
    if matches!(n, "invoke" | "nox" | "tox") {
        for t in &targets {
            if let Some(rule) = risky_name(t) {
                az.hit(
                    rule,
                    format!("task '{t}' cannot be read and its name suggests a deploy or teardown"),
                );
            }
        }
        return;
    }
    let base = dir
        .clone()
        .map(|d| normalise_ws_path(&d))
        .or_else(|| dir_of(st))
        .unwrap_or_default();
    let candidates: Vec<String> = match (&file, n) {
        (Some(f), _) => vec![f.clone()],
        (None, "just") => vec!["justfile".into(), "Justfile".into(), ".justfile".into()],
        (None, "task") => vec!["Taskfile.yml".into(), "Taskfile.yaml".into()],
        (None, _) => vec!["GNUmakefile".into(), "makefile".into(), "Makefile".into()],
    };
    let content = candidates.iter().find_map(|c| {
        let want = normalise_ws_path(&if base.is_empty() {
            c.clone()
        } else {
            format!("{base}/{c}")
        });
        az.ctx
            .files
            .iter()
            .find(|(p, _)| normalise_ws_path(p) == want)
            .map(|(_, c)| *c)
    });
    let Some(content) = content.filter(|_| n == "make" || n == "gmake" || n == "just") else {
        for t in &targets {
            if let Some(rule) = risky_name(t) {
                az.hit(
                    rule,
                    format!(
                        "target '{t}' cannot be read and its name suggests a deploy or teardown"
                    ),
                );
            }
        }
        return;
    };
    let mf = parse_makefile(content, n == "just");
    let mut mvars = mf.vars.clone();
    mvars.extend(vars);
    if targets.is_empty()
        && let Some(d) = &mf.default
    {
        targets.push(d.clone());
    }
    let mut stack = targets.clone();
    let mut seen = std::collections::HashSet::new();
    while let Some(t) = stack.pop() {
        if !seen.insert(t.clone()) || seen.len() > 64 {
            continue;
        }
        let Some(rule) = mf.rules.iter().find(|r| r.targets.contains(&t)) else {
            if targets.contains(&t)
                && let Some(rule) = risky_name(&t)
            {
                az.hit(
                    rule,
                    format!("target '{t}' is not in the Makefile and its name suggests a deploy"),
                );
            }
            continue;
        };
        stack.extend(rule.prereqs.iter().cloned());
        for line in &rule.recipe {
            let text = expand_make(line, &mvars, &t);
            let mut inner = st.clone();
            if let Some(d) = &dir {
                inner.cwd = match super::analyze::resolve_path(&st.cwd, d) {
                    Some(p) => Cwd::At(p),
                    None => Cwd::Unknown,
                };
            }
            az.script(&mut inner, &text);
        }
    }
}

struct MakeRule {
    targets: Vec<String>,
    prereqs: Vec<String>,
    recipe: Vec<String>,
}

struct Makefile {
    rules: Vec<MakeRule>,
    vars: Vec<(String, String)>,
    default: Option<String>,
}

fn parse_makefile(text: &str, just: bool) -> Makefile {
    let mut mf = Makefile {
        rules: Vec::new(),
        vars: Vec::new(),
        default: None,
    };
    let mut joined: Vec<String> = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        if let Some(l) = line.strip_suffix('\\') {
            cur.push_str(l);
            cur.push(' ');
            continue;
        }
        cur.push_str(line);
        joined.push(std::mem::take(&mut cur));
    }
    if !cur.is_empty() {
        joined.push(cur);
    }
    for line in joined {
        let is_recipe = line.starts_with('\t') || (just && line.starts_with("    "));
        if is_recipe {
            if let Some(r) = mf.rules.last_mut() {
                let l = line
                    .trim_start()
                    .trim_start_matches(['@', '-', '+'])
                    .to_string();
                if !l.is_empty() && !l.starts_with('#') {
                    r.recipe.push(l);
                }
            }
            continue;
        }
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = t
            .split_once(":=")
            .or_else(|| t.split_once("?="))
            .or_else(|| t.split_once("+="))
            .or_else(|| t.split_once("::="))
            && (!k.contains(':') && !k.contains(' ')
                || k.split_whitespace().count() == 1 && !k.contains(':'))
        {
            mf.vars.push((
                k.trim().trim_start_matches("export ").to_string(),
                v.trim().to_string(),
            ));
            continue;
        }
        if let Some((k, v)) = t.split_once('=')
            && !k.contains(':')
        {
            mf.vars.push((
                k.trim().trim_start_matches("export ").to_string(),
                v.trim().to_string(),
            ));
            continue;
        }
        if let Some((ts, ps)) = t.split_once(':') {
            let ps = ps
                .split_once(';')
                .map(|(p, r)| (p, Some(r)))
                .unwrap_or((ps, None));
            let targets: Vec<String> = ts
                .split_whitespace()
                .map(|s| s.trim_start_matches('@').to_string())
                .filter(|s| !s.starts_with('['))
                .collect();
            let mut prereqs: Vec<String> = ps.0.split_whitespace().map(String::from).collect();
            if just {
                // `name arg: deps` in just: the first word is the recipe name.
                prereqs.retain(|p| !p.starts_with('(') && !p.contains('='));
            }
            let names: Vec<String> = if just {
                targets.into_iter().take(1).collect()
            } else {
                targets
            };
            if mf.default.is_none()
                && let Some(f) = names.first()
                && !f.starts_with('.')
                && !f.contains('%')
            {
                mf.default = Some(f.clone());
            }
            let mut recipe = Vec::new();
            if let Some(r) = ps.1 {
                recipe.push(r.trim().to_string());
            }
            mf.rules.push(MakeRule {
                targets: names,
                prereqs,
                recipe,
            });
        }
    }
    mf
}

fn expand_make(line: &str, vars: &[(String, String)], target: &str) -> String {
    let mut s = line.replace("$@", target).replace("$$", "\u{2}");
    for _ in 0..4 {
        let mut changed = false;
        for (k, v) in vars.iter().rev() {
            for pat in [
                format!("$({k})"),
                format!("${{{k}}}"),
                format!("{{{{{k}}}}}"),
            ] {
                if s.contains(&pat) {
                    s = s.replace(&pat, v);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    s.replace('\u{2}', "$")
}

/// `concurrently "a" "b"`, `npm-run-all a b`.
pub fn runner(az: &mut Analyzer<'_>, st: &mut State, n: &str, args: &[Field]) {
    let ops: Vec<Field> = {
        let valued = [
            "-n",
            "--names",
            "-c",
            "--prefix-colors",
            "-p",
            "--prefix",
            "-k",
            "--kill-others",
            "--max-processes",
            "-m",
            "--success",
            "-s",
            "--restart-tries",
            "--timings",
            "--raw",
            "--group",
            "-l",
            "--print-label",
            "--npm-path",
        ];
        let mut out = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let a = args[i].s.as_str();
            if a.starts_with('-') {
                if valued.contains(&a)
                    && !matches!(
                        a,
                        "-k" | "--kill-others"
                            | "--raw"
                            | "--group"
                            | "-l"
                            | "--print-label"
                            | "--timings"
                    )
                {
                    i += 1;
                }
            } else {
                out.push(args[i].clone());
            }
            i += 1;
        }
        out
    };
    for o in ops {
        if n == "concurrently" {
            let s = o.s.clone();
            if let Some(script) = s.strip_prefix("npm:") {
                follow_script(az, st, None, script, &[]);
            } else {
                let mut inner = st.clone();
                az.script(&mut inner, &s);
            }
        } else {
            follow_script(az, st, None, &o.s.clone(), &[]);
        }
    }
}
