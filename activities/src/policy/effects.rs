//! What commands do: wrappers resolved to the command they run, and the effects of leaf
//! commands (deleting outside the workspace, writing devices, rewriting git history,
//! deploying, changing infrastructure, dropping data, running untrusted text) reported as
//! rule hits. Rule ids are those of `rules.toml`.

use super::analyze::{Analyzer, Cwd, Field, Flow, State, Taint, UNKNOWN, resolve_path};
use super::{deploy, sql};

pub enum Next {
    /// The wrapper runs this command line.
    Run(Vec<Field>),
    /// Fully handled.
    Done(Flow),
    /// Not a wrapper: check the command itself.
    Leaf,
}

pub const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "rbash", "yash", "posh", "fish", "tcsh",
    "csh", "ksh93", "lksh", "oksh", "hush",
];
pub const INTERPRETERS: &[&str] = &[
    "python",
    "python2",
    "python3",
    "pypy",
    "pypy3",
    "node",
    "nodejs",
    "perl",
    "ruby",
    "php",
    "lua",
    "luajit",
    "deno",
    "bun",
    "tsx",
    "ts-node",
    "Rscript",
    "julia",
    "irb",
    "jshell",
    "pwsh",
    "powershell",
    "osascript",
    "tclsh",
    "expect",
    "groovy",
    "scala",
    "elixir",
    "erl",
];

fn is_interpreter(name: &str) -> bool {
    INTERPRETERS.contains(&name)
        || (name.starts_with("python") && name[6..].chars().all(|c| c.is_ascii_digit() || c == '.'))
        || (name.starts_with("pypy") && name[4..].chars().all(|c| c.is_ascii_digit() || c == '.'))
        || (name.starts_with("perl") && name[4..].chars().all(|c| c.is_ascii_digit() || c == '.'))
        || (name.starts_with("ruby") && name[4..].chars().all(|c| c.is_ascii_digit() || c == '.'))
        || (name.starts_with("php") && name[3..].chars().all(|c| c.is_ascii_digit() || c == '.'))
        || (name.starts_with("node") && name[4..].chars().all(|c| c.is_ascii_digit()))
}

/// Skips options of a wrapper. `valued` lists options that take a separate value (long
/// options may also use `--opt=value`). Returns the index of the first operand.
pub fn skip_opts(args: &[Field], mut i: usize, valued: &[&str]) -> usize {
    while i < args.len() {
        let a = args[i].s.as_str();
        if a == "--" {
            return i + 1;
        }
        if !a.starts_with('-') || a == "-" {
            return i;
        }
        if a.starts_with("--") {
            if !a.contains('=') && valued.contains(&a) {
                i += 1;
            }
        } else if valued.contains(&a) {
            i += 1;
        } else if a.len() > 2 && valued.contains(&&a[..2]) {
            // `-uroot`: value attached.
        } else {
            // A cluster like `-fs` whose last letter takes a value.
            let last = format!("-{}", a.chars().last().unwrap_or('-'));
            if a.len() > 2 && valued.contains(&last.as_str()) && !a.starts_with("--") {
                i += 1;
            }
        }
        i += 1;
    }
    i
}

/// Operands of a command after skipping options (options anywhere, GNU style).
pub fn operands<'a>(args: &'a [Field], valued: &[&str]) -> Vec<&'a Field> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut end = false;
    while i < args.len() {
        let a = args[i].s.as_str();
        if end || !a.starts_with('-') || a == "-" {
            out.push(&args[i]);
        } else if a == "--" {
            end = true;
        } else if (valued.contains(&a) && !a.contains('=')) || (a.len() == 2 && valued.contains(&a))
        {
            i += 1;
        }
        i += 1;
    }
    out
}

pub fn has_flag(args: &[Field], short: char, long: &[&str]) -> bool {
    args.iter().any(|a| {
        let s = a.s.as_str();
        if s == "--" {
            return false;
        }
        if s.starts_with("--") {
            return long
                .iter()
                .any(|l| s == *l || s.starts_with(&format!("{l}=")));
        }
        s.starts_with('-') && s.len() > 1 && !s[1..].contains('=') && s[1..].contains(short)
    })
}

fn strs(fs: &[Field]) -> Vec<&str> {
    fs.iter().map(|f| f.s.as_str()).collect()
}

/// Resolves wrappers and script-runners.
pub fn unwrap(
    az: &mut Analyzer<'_>,
    st: &mut State,
    name: &str,
    argv: &[Field],
    input: &Flow,
) -> Next {
    let args = &argv[1..];
    let rest = |i: usize| -> Next {
        if i < args.len() {
            Next::Run(args[i..].to_vec())
        } else {
            Next::Done(Flow::Empty)
        }
    };
    match name {
        "sudo" => {
            let lead = &args[..args
                .iter()
                .position(|a| !a.s.starts_with('-'))
                .unwrap_or(args.len())];
            if has_flag(lead, 'e', &["--edit"])
                || has_flag(lead, 'l', &["--list"])
                || has_flag(lead, 'v', &["--validate"])
                || has_flag(lead, 'k', &["--reset-timestamp"]) && lead.len() == args.len()
            {
                return Next::Done(Flow::Empty);
            }
            let i = skip_opts(
                args,
                0,
                &[
                    "-u",
                    "-g",
                    "-h",
                    "-p",
                    "-C",
                    "-D",
                    "-r",
                    "-t",
                    "-U",
                    "-T",
                    "--user",
                    "--group",
                    "--host",
                    "--prompt",
                    "--chdir",
                    "--role",
                    "--type",
                    "--other-user",
                    "--close-from",
                    "--command-timeout",
                ],
            );
            if has_flag(lead, 's', &["--shell"]) || has_flag(lead, 'i', &["--login"]) {
                if i >= args.len() {
                    return shell_stdin(az, input);
                }
                return join_script(az, st, &args[i..]);
            }
            rest(i)
        }
        "doas" => rest(skip_opts(args, 0, &["-u", "-C"])),
        "su" | "runuser" | "sg" => {
            if let Some(k) = args
                .iter()
                .position(|a| a.s == "-c" || a.s == "--command" || a.s.starts_with("--command="))
            {
                let script = if let Some(v) = args[k].s.strip_prefix("--command=") {
                    Field {
                        s: v.to_string(),
                        taint: args[k].taint,
                    }
                } else if let Some(v) = args.get(k + 1) {
                    v.clone()
                } else {
                    return Next::Done(Flow::Empty);
                };
                return run_script(az, st, &script);
            }
            if name == "runuser" {
                return rest(skip_opts(args, 0, &["-u", "-g", "-G", "--user", "--group"]));
            }
            if args.iter().any(|a| a.s == "--") {
                let k = args.iter().position(|a| a.s == "--").unwrap_or(0);
                return rest(k + 1);
            }
            shell_stdin(az, input)
        }
        "env" => {
            let mut i = 0;
            while i < args.len() {
                let a = args[i].s.as_str();
                if a == "--" {
                    i += 1;
                    break;
                }
                if let Some(s) = a
                    .strip_prefix("--split-string=")
                    .or_else(|| a.strip_prefix("-S").filter(|s| !s.is_empty()))
                {
                    return split_string(az, st, s, &args[i + 1..]);
                }
                if a == "-S" || a == "--split-string" {
                    let s = args.get(i + 1).map(|f| f.s.clone()).unwrap_or_default();
                    return split_string(az, st, &s, args.get(i + 2..).unwrap_or(&[]));
                }
                if matches!(a, "-u" | "--unset" | "-C" | "--chdir" | "-P") {
                    i += 2;
                    continue;
                }
                if a.starts_with('-') {
                    i += 1;
                    continue;
                }
                if let Some((k, v)) = a.split_once('=')
                    && !k.is_empty()
                    && !k.contains('/')
                {
                    st.vars.insert(
                        k.to_string(),
                        super::analyze::Var {
                            text: v.to_string(),
                            taint: args[i].taint,
                        },
                    );
                    i += 1;
                    continue;
                }
                break;
            }
            rest(i)
        }
        "nice" => rest(skip_opts_numeric(args, &["-n", "--adjustment"])),
        "ionice" => rest(skip_opts(
            args,
            0,
            &["-c", "-n", "-p", "-P", "-u", "--class", "--classdata"],
        )),
        "nohup" | "setsid" | "unbuffer" | "catchsegv" | "builtin" | "then" | "dumb-init"
        | "tini" | "run-one" | "with-contenv" | "unshare" | "setpriv" | "firejail" | "torsocks"
        | "tsocks" | "caffeinate" | "valgrind" | "eatmydata" | "fakeroot" | "proxychains"
        | "proxychains4" | "time" | "stdbuf" | "command" | "exec" | "xvfb-run" | "strace"
        | "ltrace" | "nsenter" | "systemd-run" | "entr" | "chronic" | "ifne" | "pv" | "sem"
        | "faketime" => {
            if name == "command" && (has_flag(args, 'v', &[]) || has_flag(args, 'V', &[])) {
                return match args.iter().find(|a| !a.s.starts_with('-')) {
                    Some(a) if a.known() => Next::Done(Flow::Text(format!("{}\n", a.s))),
                    _ => Next::Done(Flow::Unknown(Taint::Clean)),
                };
            }
            if name == "pv" {
                return Next::Done(input.clone());
            }
            if name == "faketime" {
                return rest(skip_opts(args, 0, &["-m", "-f"]) + 1);
            }
            let valued: &[&str] = match name {
                "time" => &["-f", "-o", "--format", "--output"],
                "stdbuf" => &["-i", "-o", "-e", "--input", "--output", "--error"],
                "exec" => &["-a"],
                "xvfb-run" => &[
                    "-n",
                    "-s",
                    "-e",
                    "-f",
                    "-p",
                    "--server-num",
                    "--server-args",
                    "--error-file",
                    "--auth-file",
                ],
                "strace" | "ltrace" => &[
                    "-o", "-e", "-p", "-s", "-u", "-E", "-a", "-b", "-I", "-O", "-P", "-S", "-X",
                ],
                "firejail" => &[],
                "systemd-run" => &[
                    "-u",
                    "-p",
                    "-E",
                    "--unit",
                    "--property",
                    "--setenv",
                    "--uid",
                    "--gid",
                    "--slice",
                    "-M",
                    "--machine",
                    "--working-directory",
                ],
                "nsenter" => &["-t", "--target", "-S", "-G", "--setuid", "--setgid"],
                "setpriv" => &[
                    "--reuid",
                    "--regid",
                    "--groups",
                    "--inh-caps",
                    "--bounding-set",
                ],
                "sem" => &["-j", "--id", "--jobs"],
                "proxychains" | "proxychains4" => &["-f"],
                _ => &[],
            };
            rest(skip_opts(args, 0, valued))
        }
        "timeout" => {
            let i = skip_opts(args, 0, &["-s", "-k", "--signal", "--kill-after"]);
            rest(i + 1)
        }
        "chroot" => rest(skip_opts(args, 0, &["--userspec", "--groups"]) + 1),
        "gosu" | "su-exec" | "cgexec" | "aws-vault" | "direnv" => {
            let i = match name {
                "cgexec" => skip_opts(args, 0, &["-g"]),
                "aws-vault" => {
                    let k = args.iter().position(|a| a.s == "--");
                    return match k {
                        Some(k) => rest(k + 1),
                        None => rest(skip_opts(args, 0, &[]) + 2),
                    };
                }
                _ => 0,
            };
            rest(i + 1)
        }
        "taskset" => {
            let i = skip_opts(args, 0, &[]);
            if has_flag(args, 'p', &["--pid"]) {
                return Next::Done(Flow::Empty);
            }
            rest(i + 1)
        }
        "chrt" => rest(skip_opts(args, 0, &["-T", "-P", "-D"]) + 1),
        "flock" => {
            if let Some(k) = args.iter().position(|a| a.s == "-c" || a.s == "--command")
                && let Some(s) = args.get(k + 1)
            {
                return run_script(az, st, s);
            }
            rest(skip_opts(args, 0, &["-w", "-E", "--timeout", "--conflict-exit-code"]) + 1)
        }
        "watch" => {
            let i = skip_opts(
                args,
                0,
                &[
                    "-n",
                    "-d",
                    "--interval",
                    "--differences",
                    "-q",
                    "--equexit",
                    "--chgexit",
                ],
            );
            join_script(az, st, &args[i.min(args.len())..])
        }
        "script" => {
            if let Some(k) = args.iter().position(|a| a.s == "-c" || a.s == "--command")
                && let Some(s) = args.get(k + 1)
            {
                return run_script(az, st, s);
            }
            Next::Done(Flow::Empty)
        }
        "nodemon" => {
            if let Some(k) = args.iter().position(|a| a.s == "--exec" || a.s == "-x")
                && let Some(s) = args.get(k + 1)
            {
                return run_script(az, st, s);
            }
            Next::Done(Flow::Empty)
        }
        "parallel" => {
            // `parallel CMD ::: ARGS`: CMD run with each argument.
            let i = skip_opts(
                args,
                0,
                &[
                    "-j",
                    "-P",
                    "--jobs",
                    "-S",
                    "--sshlogin",
                    "-a",
                    "--arg-file",
                    "-d",
                    "--delimiter",
                    "-n",
                    "-N",
                    "--max-args",
                    "-I",
                    "--halt",
                ],
            );
            let mut v: Vec<Field> = args[i.min(args.len())..]
                .iter()
                .filter(|a| !a.s.starts_with(":::"))
                .cloned()
                .collect();
            if !args.iter().any(|a| a.s.starts_with(":::")) {
                v.push(Field::lit(&UNKNOWN.to_string()));
            }
            if v.len() == 1 || v.first().is_some_and(|f| f.s.contains(' ')) {
                return join_script(az, st, &v);
            }
            Next::Run(v)
        }
        "ssh" => {
            let i = skip_opts(
                args,
                0,
                &[
                    "-b", "-c", "-D", "-E", "-e", "-F", "-I", "-i", "-J", "-L", "-l", "-m", "-O",
                    "-o", "-p", "-Q", "-R", "-S", "-W", "-w", "-B",
                ],
            );
            if i + 1 < args.len() {
                return join_script(az, st, &args[i + 1..]);
            }
            Next::Done(Flow::Empty)
        }
        "busybox" | "toybox" => {
            if args.first().is_some_and(|a| a.s.starts_with("--")) || args.is_empty() {
                return Next::Done(Flow::Empty);
            }
            rest(0)
        }
        "cross-env" | "dotenv" | "env-cmd" | "op" | "doppler" | "infisical" | "with-env" => {
            if let Some(k) = args.iter().position(|a| a.s == "--") {
                return rest(k + 1);
            }
            let mut i = match name {
                "env-cmd" => skip_opts(
                    args,
                    0,
                    &["-f", "-e", "--file", "--environments", "-r", "--rc-file"],
                ),
                "dotenv" => skip_opts(args, 0, &["-e", "-c", "-v", "-p"]),
                "op" | "doppler" | "infisical" => {
                    if args.first().is_some_and(|a| a.s == "run") {
                        skip_opts(
                            args,
                            1,
                            &["--env-file", "-p", "-c", "--project", "--config", "--env"],
                        )
                    } else {
                        return Next::Leaf;
                    }
                }
                _ => 0,
            };
            while args
                .get(i)
                .is_some_and(|a| a.s.contains('=') && !a.s.starts_with('-'))
            {
                i += 1;
            }
            rest(i)
        }
        "npx" | "pnpx" | "bunx" => {
            let i = skip_opts(
                args,
                0,
                &["-p", "--package", "-c", "--call", "-w", "--workspace"],
            );
            if let Some(k) = args.iter().position(|a| a.s == "-c" || a.s == "--call")
                && let Some(s) = args.get(k + 1)
            {
                return run_script(az, st, s);
            }
            pkg_bin(args, i)
        }
        "uvx" | "pipx" => {
            let mut i = skip_opts(args, 0, &["--from", "--with", "-p", "--python", "--spec"]);
            if name == "pipx" {
                if args.get(i).is_some_and(|a| a.s == "run") {
                    i = skip_opts(args, i + 1, &["--spec", "--python"]);
                } else {
                    return Next::Leaf;
                }
            }
            rest(i)
        }
        "poetry" | "pipenv" | "pdm" | "hatch" | "rye" | "uv" | "bundle" | "conda" | "mamba"
        | "micromamba" | "devbox" | "mise" | "rtx" | "asdf" | "nix-shell" | "nix" | "pixi"
        | "dotnet" | "foreman" | "honcho" => {
            let sub = args.first().map(|a| a.s.as_str()).unwrap_or("");
            match (name, sub) {
                (
                    "poetry" | "pipenv" | "pdm" | "hatch" | "rye" | "uv" | "devbox" | "pixi",
                    "run",
                )
                | ("bundle", "exec")
                | ("mise" | "rtx", "exec" | "x")
                | ("asdf", "exec")
                | ("conda" | "mamba" | "micromamba", "run") => {
                    let i = skip_opts(
                        args,
                        1,
                        &[
                            "-n",
                            "--name",
                            "-p",
                            "--prefix",
                            "-e",
                            "--env",
                            "--with",
                            "--python",
                            "-C",
                            "--cwd",
                            "--directory",
                            "--project",
                            "--package",
                        ],
                    );
                    rest(i)
                }
                ("nix-shell", _) | ("nix", "develop" | "shell") => {
                    if let Some(k) = args
                        .iter()
                        .position(|a| a.s == "--run" || a.s == "--command" || a.s == "-c")
                    {
                        if a_is(args, k, "-c") || a_is(args, k, "--command") {
                            return rest(k + 1);
                        }
                        if let Some(s) = args.get(k + 1) {
                            return run_script(az, st, s);
                        }
                    }
                    Next::Done(Flow::Empty)
                }
                ("foreman" | "honcho", "run") => rest(skip_opts(args, 1, &["-e", "-f", "-d"])),
                _ => Next::Leaf,
            }
        }
        "xargs" => xargs(az, st, args, input),
        "find" => find(az, st, args),
        "eval" => {
            let joined = join_fields(args);
            if !joined.known() || joined.taint != Taint::Clean {
                if joined.taint >= Taint::Opaque {
                    az.taint_exec(
                        joined.taint,
                        "eval of decoded, transformed or downloaded text",
                    );
                } else {
                    az.hit("eval-dynamic", "eval of text only known at run time");
                }
                return Next::Done(Flow::Unknown(Taint::Clean));
            }
            let mut inner = st.clone();
            az.script(&mut inner, &joined.s);
            *st = inner;
            Next::Done(Flow::Unknown(Taint::Clean))
        }
        "source" | "." => {
            let Some(f) = args.first() else {
                return Next::Done(Flow::Empty);
            };
            if matches!(
                f.s.as_str(),
                "/dev/stdin" | "-" | "/proc/self/fd/0" | "/dev/fd/0"
            ) {
                return shell_stdin(az, input);
            }
            exec_path(az, st, f, true);
            Next::Done(Flow::Unknown(Taint::Clean))
        }
        "trap" => {
            if let Some(a) = args.iter().find(|a| !a.s.starts_with('-')) {
                let a = a.clone();
                return run_script(az, st, &a);
            }
            Next::Done(Flow::Empty)
        }
        "alias" => {
            for a in args {
                if let Some((k, v)) = a.s.split_once('=') {
                    st.aliases.insert(k.to_string(), v.to_string());
                }
            }
            Next::Done(Flow::Empty)
        }
        "unalias" => {
            for a in args {
                st.aliases.remove(&a.s);
            }
            Next::Done(Flow::Empty)
        }
        "export" | "declare" | "typeset" | "local" | "readonly" => {
            for a in args {
                if let Some((k, v)) = a.s.split_once('=') {
                    if super::analyze::runs_shell_var(k) && !v.is_empty() {
                        let f = Field {
                            s: v.to_string(),
                            taint: a.taint,
                        };
                        run_script(az, st, &f);
                    }
                    st.vars.insert(
                        k.trim_end_matches('+').to_string(),
                        super::analyze::Var {
                            text: v.to_string(),
                            taint: a.taint,
                        },
                    );
                }
            }
            Next::Done(Flow::Empty)
        }
        "unset" => {
            for a in args {
                st.vars.remove(&a.s);
                st.funcs.remove(&a.s);
            }
            Next::Done(Flow::Empty)
        }
        "read" | "mapfile" | "readarray" => {
            let line = match input {
                Flow::Text(t) if name == "read" => {
                    Some(t.lines().next().unwrap_or("").trim().to_string())
                }
                _ => None,
            };
            for a in operands(
                args,
                &[
                    "-p", "-d", "-n", "-N", "-t", "-u", "-a", "-C", "-c", "-s", "-O",
                ],
            ) {
                st.vars.insert(
                    a.s.clone(),
                    super::analyze::Var {
                        text: line.clone().unwrap_or_else(|| UNKNOWN.to_string()),
                        taint: input.taint(),
                    },
                );
            }
            Next::Done(Flow::Empty)
        }
        "cd" | "pushd" => {
            let ops = operands(args, &[]);
            st.cwd = match ops.first() {
                None => Cwd::At("~".into()),
                Some(f) if f.s == "-" || !f.known() => Cwd::Unknown,
                Some(f) => match resolve_path(&st.cwd, &f.s) {
                    Some(p) => Cwd::At(p),
                    None => Cwd::Unknown,
                },
            };
            Next::Done(Flow::Empty)
        }
        "popd" => {
            st.cwd = Cwd::Unknown;
            Next::Done(Flow::Empty)
        }
        _ if SHELLS.contains(&name) => shell(az, st, args, input),
        _ => Next::Leaf,
    }
}

fn a_is(args: &[Field], k: usize, s: &str) -> bool {
    args.get(k).is_some_and(|a| a.s == s)
}

fn skip_opts_numeric(args: &[Field], valued: &[&str]) -> usize {
    let mut i = 0;
    while i < args.len() {
        let a = args[i].s.as_str();
        if a == "--" {
            return i + 1;
        }
        if !a.starts_with('-') {
            return i;
        }
        if valued.contains(&a) {
            i += 1;
        }
        i += 1;
    }
    i
}

/// The binary a package provides (`netlify-cli` → `netlify`, `@scope/x@1` → `x`).
pub fn bin_of_package(pkg: &str) -> String {
    let no_ver = match pkg.strip_prefix('@') {
        Some(r) => format!("@{}", r.split('@').next().unwrap_or(r)),
        None => pkg.split('@').next().unwrap_or(pkg).to_string(),
    };
    let bin = no_ver.rsplit('/').next().unwrap_or(&no_ver);
    match bin {
        "cli" | "wrangler" if no_ver.contains("cloudflare") => "wrangler",
        "cli" if no_ver.contains("vercel") => "vercel",
        "netlify-cli" => "netlify",
        "firebase-tools" => "firebase",
        "aws-cdk" => "cdk",
        "cli" if no_ver.contains("railway") => "railway",
        "serverless" | "sls" => "serverless",
        b => b,
    }
    .to_string()
}

fn pkg_bin(args: &[Field], i: usize) -> Next {
    if i >= args.len() {
        return Next::Done(Flow::Empty);
    }
    let mut v = args[i..].to_vec();
    // `npx vercel@latest`, `npx @scope/tool@1` → the binary name.
    let pkg = v[0].s.clone();
    let no_ver = match pkg.strip_prefix('@') {
        Some(r) => format!("@{}", r.split('@').next().unwrap_or(r)),
        None => pkg.split('@').next().unwrap_or(&pkg).to_string(),
    };
    let bin = no_ver.rsplit('/').next().unwrap_or(&no_ver);
    let bin = match bin {
        "cli" | "wrangler" if no_ver.contains("cloudflare") => "wrangler",
        "cli" if no_ver.contains("vercel") => "vercel",
        "netlify-cli" => "netlify",
        "firebase-tools" => "firebase",
        "aws-cdk" => "cdk",
        "@railway/cli" | "railway" => "railway",
        b => b,
    };
    v[0] = Field {
        s: bin.to_string(),
        taint: v[0].taint,
    };
    Next::Run(v)
}

pub fn join_fields(args: &[Field]) -> Field {
    let mut out = Field::default();
    for (k, a) in args.iter().enumerate() {
        if k > 0 {
            out.s.push(' ');
        }
        out.s.push_str(&a.s);
        out.taint = out.taint.max(a.taint);
    }
    out
}

fn join_script(az: &mut Analyzer<'_>, st: &mut State, args: &[Field]) -> Next {
    if args.is_empty() {
        return Next::Done(Flow::Empty);
    }
    let f = join_fields(args);
    run_script(az, st, &f)
}

/// `env -S 'a b c' rest…`
fn split_string(az: &mut Analyzer<'_>, st: &mut State, s: &str, rest: &[Field]) -> Next {
    let mut text = s.to_string();
    for r in rest {
        text.push(' ');
        text.push_str(&shell_quote(&r.s));
    }
    let mut inner = st.clone();
    az.script(&mut inner, &text);
    Next::Done(Flow::Unknown(Taint::Clean))
}

pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Runs shell text given as a field (`sh -c`, `su -c`, `ssh host cmd`, …).
pub fn run_script(az: &mut Analyzer<'_>, st: &mut State, f: &Field) -> Next {
    if f.taint >= Taint::Opaque {
        az.taint_exec(
            f.taint,
            "a shell runs decoded, transformed or downloaded text",
        );
        return Next::Done(Flow::Unknown(Taint::Clean));
    }
    if !f.known() {
        az.hit("eval-dynamic", "a shell runs text only known at run time");
        return Next::Done(Flow::Unknown(Taint::Clean));
    }
    let mut inner = st.clone();
    az.script(&mut inner, &f.s);
    Next::Done(Flow::Unknown(Taint::Clean))
}

/// A shell reading its script from stdin.
fn shell_stdin(az: &mut Analyzer<'_>, input: &Flow) -> Next {
    match input {
        Flow::Text(t) => {
            let mut inner = State::new();
            let t = t.clone();
            az.script(&mut inner, &t);
        }
        Flow::Unknown(Taint::Clean) => az.hit(
            "decode-pipe-shell",
            "a shell runs text from a pipe the analyser cannot follow",
        ),
        Flow::Unknown(t) => az.taint_exec(*t, "a shell runs text from a pipe"),
        Flow::Empty => {}
    }
    Next::Done(Flow::Unknown(Taint::Clean))
}

fn shell(az: &mut Analyzer<'_>, st: &mut State, args: &[Field], input: &Flow) -> Next {
    let mut i = 0;
    let mut c = false;
    let mut s_flag = false;
    while i < args.len() {
        let a = args[i].s.as_str();
        if a == "--" || a == "-" {
            i += 1;
            break;
        }
        if a == "-o" || a == "+o" || a == "-O" || a == "+O" || a == "--rcfile" || a == "--init-file"
        {
            i += 2;
            continue;
        }
        if a.starts_with("--") {
            if a == "--command" {
                c = true;
            }
            i += 1;
            continue;
        }
        if (a.starts_with('-') || a.starts_with('+')) && a.len() > 1 {
            if a.contains('c') {
                c = true;
            }
            if a.contains('s') {
                s_flag = true;
            }
            i += 1;
            continue;
        }
        break;
    }
    if c {
        let Some(script) = args.get(i) else {
            return Next::Done(Flow::Empty);
        };
        let script = script.clone();
        return run_script(az, st, &script);
    }
    if i >= args.len() || s_flag {
        return shell_stdin(az, input);
    }
    let f = args[i].clone();
    if matches!(f.s.as_str(), "/dev/stdin" | "/proc/self/fd/0" | "/dev/fd/0") {
        return shell_stdin(az, input);
    }
    exec_path(az, st, &f, true);
    Next::Done(Flow::Unknown(Taint::Clean))
}

/// Runs a script file (`sh FILE`, `source FILE`, `python FILE`).
fn exec_path(az: &mut Analyzer<'_>, st: &mut State, f: &Field, shell: bool) {
    if f.s == "/dev/stdin" || f.s == "-" {
        return;
    }
    if f.taint >= Taint::Opaque {
        az.taint_exec(f.taint, "a script path from decoded or downloaded text");
        return;
    }
    if !f.known() {
        az.hit("eval-dynamic", "a script path only known at run time");
        return;
    }
    if az.exec_file(st, f, &[]).is_none() {
        if shell && f.s.starts_with("/dev/fd/") {
            az.hit(
                "decode-pipe-shell",
                "a shell runs the output of a process it cannot follow",
            );
        } else if let Some(rule) = super::pkg::risky_name(f.s.rsplit('/').next().unwrap_or("")) {
            az.hit(rule, "a script that is not in the workspace and whose name suggests a deploy or teardown");
        }
    }
}

fn xargs(az: &mut Analyzer<'_>, st: &mut State, args: &[Field], input: &Flow) -> Next {
    let valued = [
        "-I",
        "-i",
        "-n",
        "-P",
        "-L",
        "-l",
        "-s",
        "-d",
        "-E",
        "-e",
        "-a",
        "--max-args",
        "--max-procs",
        "--delimiter",
        "--arg-file",
        "--replace",
        "--max-lines",
        "--eof",
        "--process-slot-var",
    ];
    let mut i = 0;
    let mut replace: Option<String> = None;
    while i < args.len() {
        let a = args[i].s.as_str();
        if a == "--" {
            i += 1;
            break;
        }
        if !a.starts_with('-') {
            break;
        }
        if a == "-I" {
            replace = args.get(i + 1).map(|f| f.s.clone());
        } else if let Some(r) = a.strip_prefix("-I") {
            replace = Some(r.to_string());
        } else if a == "-i" || a.starts_with("--replace") {
            replace = Some("{}".into());
        }
        if valued.contains(&a) && a != "-i" {
            i += 1;
        }
        i += 1;
    }
    let items: Vec<Field> = match input {
        Flow::Text(t) => t.split_whitespace().take(64).map(Field::lit).collect(),
        Flow::Unknown(t) => vec![Field {
            s: UNKNOWN.to_string(),
            taint: *t,
        }],
        Flow::Empty => vec![Field {
            s: UNKNOWN.to_string(),
            taint: Taint::Clean,
        }],
    };
    let mut cmd: Vec<Field> = if i < args.len() {
        args[i..].to_vec()
    } else {
        vec![Field::lit("echo")]
    };
    match replace {
        Some(r) if !r.is_empty() => {
            let mut out = Vec::new();
            for item in &items {
                for c in &cmd {
                    out.push(Field {
                        s: c.s.replace(&r, &item.s),
                        taint: c.taint.max(if c.s.contains(&r) {
                            item.taint
                        } else {
                            Taint::Clean
                        }),
                    });
                }
                let mut inner = st.clone();
                az.run(&mut inner, std::mem::take(&mut out), Flow::Empty);
            }
            Next::Done(Flow::Unknown(Taint::Clean))
        }
        _ => {
            cmd.extend(items);
            Next::Run(cmd)
        }
    }
}

fn find(az: &mut Analyzer<'_>, st: &mut State, args: &[Field]) -> Next {
    let mut i = 0;
    while i < args.len()
        && matches!(
            args[i].s.as_str(),
            "-H" | "-L" | "-P" | "-O0" | "-O1" | "-O2" | "-O3"
        )
    {
        i += 1;
    }
    let mut roots = Vec::new();
    while i < args.len() {
        let a = &args[i].s;
        if a.starts_with('-') || a == "(" || a == "!" || a == "\\(" {
            break;
        }
        roots.push(args[i].clone());
        i += 1;
    }
    if roots.is_empty() {
        roots.push(Field::lit("."));
    }
    let found: Vec<Field> = roots
        .iter()
        .map(|r| Field {
            s: r.s.clone(),
            taint: r.taint,
        })
        .collect();
    // With a -name / -path / -newer test the match set is narrower, but deleting
    // everything matching under / is still outside the workspace.
    let mut k = i;
    while k < args.len() {
        let a = args[k].s.as_str();
        match a {
            "-delete" => {
                for r in &roots {
                    delete_target(az, st, r, true, "find -delete");
                }
            }
            "-exec" | "-execdir" | "-ok" | "-okdir" => {
                let start = k + 1;
                let mut end = start;
                while end < args.len()
                    && args[end].s != ";"
                    && args[end].s != "+"
                    && args[end].s != "\\;"
                {
                    end += 1;
                }
                let mut sub: Vec<Field> = Vec::new();
                for f in &found {
                    sub.clear();
                    for c in &args[start..end.min(args.len())] {
                        sub.push(Field {
                            s: c.s.replace("{}", &f.s),
                            taint: c.taint,
                        });
                    }
                    if !sub.is_empty() {
                        let mut inner = st.clone();
                        az.run(&mut inner, sub.clone(), Flow::Empty);
                    }
                }
                k = end;
            }
            "-fprint" | "-fprintf" | "-fls" => {
                if let Some(t) = args.get(k + 1) {
                    check_write(az, st, t, "find output file");
                }
            }
            _ => {}
        }
        k += 1;
    }
    Next::Done(Flow::Text(
        found
            .iter()
            .map(|f| f.s.clone())
            .collect::<Vec<_>>()
            .join("\n"),
    ))
}

// ---------------------------------------------------------------------------------------
// Paths

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Inside the workspace, /tmp, or a cache under home: ordinary work.
    Ordinary,
    /// `/`, `/*`.
    Root,
    /// A system directory or file (`/etc`, `/usr/bin/…`, `/home`, …).
    System,
    /// The home directory itself (or all of it).
    Home,
    /// A block device or kernel interface.
    Device,
    /// Depends on a working directory the analyser does not know.
    Unknown,
}

const SYSTEM_DIRS: &[&str] = &[
    "bin",
    "boot",
    "dev",
    "etc",
    "home",
    "lib",
    "lib32",
    "lib64",
    "libx32",
    "media",
    "mnt",
    "opt",
    "proc",
    "root",
    "run",
    "sbin",
    "srv",
    "sys",
    "usr",
    "var",
    "snap",
    "nix",
    "System",
    "Users",
    "Library",
    "Applications",
    "private",
    "lost+found",
    "cdrom",
    "efi",
];

pub fn is_block_device(p: &str) -> bool {
    let Some(d) = p.strip_prefix("/dev/") else {
        return false;
    };
    let safe = [
        "null", "zero", "stdout", "stderr", "stdin", "tty", "random", "urandom", "full", "ptmx",
        "console",
    ];
    if safe.contains(&d)
        || d.starts_with("fd/")
        || d.starts_with("pts/")
        || d.starts_with("shm/")
        || d.starts_with("tty")
        || d.starts_with("mqueue")
    {
        return false;
    }
    true
}

/// Classifies a path (as written, relative to the working directory).
pub fn place(st: &State, raw: &str) -> Place {
    // Unknown pieces: a guarded `${X:?}` can never be empty; an unknown one may be.
    let guarded = raw.starts_with(&format!("{UNKNOWN}guarded"));
    let mut p = raw.replace(&format!("{UNKNOWN}guarded"), "x");
    let stripped = p.starts_with(UNKNOWN) && !guarded;
    if stripped {
        // `$DIR/…` with DIR unknown: judged as if DIR were empty.
        p = p.trim_start_matches(UNKNOWN).to_string();
        if p.is_empty() {
            return Place::Ordinary;
        }
    }
    let p = p.replace(UNKNOWN, "x");
    if p.starts_with('-') {
        return Place::Ordinary;
    }
    let Some(abs) = resolve_path(&st.cwd, &p) else {
        // Relative to an unknown directory.
        let first = p.split('/').next().unwrap_or("");
        if first == "*" || first == "." || first == ".." || first == ".*" || p.is_empty() {
            return Place::Unknown;
        }
        return Place::Ordinary;
    };
    if is_block_device(&abs) {
        return Place::Device;
    }
    let segs: Vec<&str> = abs.split('/').filter(|s| !s.is_empty()).collect();
    // Trailing glob segments mean "everything in the parent".
    let mut n = segs.len();
    while n > 0 && is_wild(segs[n - 1]) {
        n -= 1;
    }
    let segs = &segs[..n];
    if segs.first() == Some(&"~") {
        let creds = [
            ".ssh", ".gnupg", ".aws", ".kube", ".docker", ".config", ".local",
        ];
        return if segs.len() == 1 || (segs.len() == 2 && creds.contains(&segs[1])) {
            Place::Home
        } else {
            Place::Ordinary
        };
    }
    if segs.is_empty() {
        return Place::Root;
    }
    let top = segs[0];
    if top == "workspace"
        || top == "tmp"
        || (top == "var" && segs.get(1) == Some(&"tmp"))
        || (top == "dev" && segs.get(1) == Some(&"shm"))
    {
        return Place::Ordinary;
    }
    if top == "home" && segs.len() >= 3 || top == "root" && segs.len() >= 2 {
        // Inside someone's home: caches and projects.
        return Place::Ordinary;
    }
    if SYSTEM_DIRS.contains(&top) || has_glob(top) {
        return Place::System;
    }
    // An unknown top-level directory (`/data`, `/app`): outside the workspace.
    if segs.len() == 1 && !stripped {
        return Place::System;
    }
    Place::Ordinary
}

fn is_wild(seg: &str) -> bool {
    seg.chars()
        .all(|c| matches!(c, '*' | '?' | '.' | '[' | ']' | '!' | '^'))
        && seg.contains(['*', '?'])
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?'])
}

/// A deletion of `target`.
pub fn delete_target(
    az: &mut Analyzer<'_>,
    st: &State,
    target: &Field,
    recursive: bool,
    what: &str,
) {
    let pl = place(st, &target.s);
    match pl {
        Place::Root | Place::Home => az.hit(
            "rm-rf-root",
            format!("{what} of {} outside the workspace", describe(pl)),
        ),
        Place::System => az.hit(
            "rm-rf-root",
            format!("{what} of a system path outside the workspace"),
        ),
        Place::Device => az.hit("dd-device", format!("{what} of a device")),
        Place::Unknown if recursive => az.hit(
            "rm-rf-root",
            format!("{what} of everything in a directory the analyser cannot determine"),
        ),
        _ => sensitive_file(az, &target.s),
    }
}

fn describe(p: Place) -> &'static str {
    match p {
        Place::Root => "/",
        Place::Home => "the home directory",
        _ => "a path",
    }
}

/// A write to `target` (redirection, tee, cp/mv destination, dd of=…).
pub fn check_write(az: &mut Analyzer<'_>, st: &State, target: &Field, what: &str) {
    let s = target.s.as_str();
    let pl = place(st, s);
    match pl {
        Place::Device => az.hit(
            "dd-device",
            format!("{what} writes to a block device or kernel memory"),
        ),
        Place::System | Place::Root => {
            if let Some(abs) = resolve_path(&st.cwd, s)
                && (abs.starts_with("/proc/") || abs.starts_with("/sys/"))
                && abs.contains("sysrq")
            {
                az.hit("system-power", "writes to the kernel's sysrq trigger");
                return;
            }
            if s.starts_with("/dev/") {
                return;
            }
            az.hit(
                "system-write",
                format!("{what} overwrites a system file outside the workspace"),
            );
        }
        _ => {}
    }
    sensitive_file(az, s);
}

/// Writes to files that define CI checks, authentication, security headers or rate limits.
pub fn sensitive_file(az: &mut Analyzer<'_>, path: &str) {
    let l = path.to_ascii_lowercase();
    if l.contains(".github/workflows")
        || l.contains(".gitlab-ci")
        || l.contains(".circleci/")
        || l.contains("jenkinsfile")
        || l.contains("azure-pipelines")
        || l.contains(".buildkite/")
    {
        az.hit("ci-security-change", "changes a CI/CD pipeline definition");
    }
    let file = l.rsplit('/').next().unwrap_or(&l);
    if (l.contains("/auth")
        || file.starts_with("auth")
        || l.contains("login")
        || l.contains("oauth")
        || l.contains("passport")
        || l.contains("mfa")
        || l.contains("session"))
        && !l.ends_with(".md")
        && !l.contains("test")
    {
        az.hit(
            "auth-flow-change",
            "changes authentication code or configuration",
        );
    }
    if l.contains("rate-limit")
        || l.contains("ratelimit")
        || l.contains("rate_limit")
        || l.contains("throttl")
    {
        az.hit("rate-limit-change", "changes rate limiting");
    }
    if l.contains("security-headers")
        || l.contains("security_headers")
        || l.contains("helmet")
        || file == "_headers"
        || l.contains("csp") && (l.ends_with(".js") || l.ends_with(".ts") || l.ends_with(".json"))
    {
        az.hit("security-headers-change", "changes security headers");
    }
    if l.contains("rbac")
        || l.contains("permission")
        || file.starts_with("roles")
        || l.contains("/acl")
        || l.contains("policies/") && !l.contains("test")
    {
        az.hit(
            "permission-change",
            "changes the permission system or user roles",
        );
    }
}

// ---------------------------------------------------------------------------------------
// Leaves

/// Checks a command that is not a wrapper. Returns what it prints.
pub fn leaf(
    az: &mut Analyzer<'_>,
    st: &mut State,
    name: &str,
    argv: &[Field],
    input: Flow,
) -> Flow {
    let args = &argv[1..];
    let name = name
        .strip_prefix("g")
        .filter(|n| {
            matches!(
                *n,
                "rm" | "mv" | "cp" | "dd" | "shred" | "chmod" | "chown" | "find" | "tee" | "sed"
            )
        })
        .unwrap_or(name);
    match name {
        "which" | "type" | "whereis" => match args.iter().find(|a| !a.s.starts_with('-')) {
            Some(a) if a.known() && name == "which" => Flow::Text(format!("{}\n", a.s)),
            _ => Flow::Unknown(Taint::Clean),
        },
        "ls" | "dirname" | "basename" | "realpath" | "readlink" => {
            let ops: Vec<&Field> = operands(
                args,
                &[
                    "-I",
                    "--ignore",
                    "-w",
                    "--width",
                    "-T",
                    "--format",
                    "--sort",
                    "--time-style",
                    "-s",
                    "--suffix",
                ],
            );
            if ops.iter().any(|o| !o.known()) {
                return Flow::Unknown(Taint::Clean);
            }
            let outs: Vec<String> = match name {
                "ls" if ops.is_empty() => vec![".".into()],
                "ls" => ops.iter().map(|o| o.s.clone()).collect(),
                "dirname" => ops
                    .iter()
                    .map(|o| {
                        let t = o.s.trim_end_matches('/');
                        match t.rfind('/') {
                            Some(0) => "/".to_string(),
                            Some(k) => t[..k].to_string(),
                            None => ".".to_string(),
                        }
                    })
                    .collect(),
                "basename" => ops
                    .iter()
                    .take(1)
                    .map(|o| {
                        o.s.trim_end_matches('/')
                            .rsplit('/')
                            .next()
                            .unwrap_or("")
                            .to_string()
                    })
                    .collect(),
                _ => ops
                    .iter()
                    .map(|o| resolve_path(&st.cwd, &o.s).unwrap_or_else(|| UNKNOWN.to_string()))
                    .collect(),
            };
            Flow::Text(outs.join("\n") + "\n")
        }
        "pwd" => match &st.cwd {
            Cwd::At(p) => Flow::Text(format!("{p}\n")),
            Cwd::Unknown => Flow::Unknown(Taint::Clean),
        },
        "echo" => {
            let mut words: Vec<&str> = strs(args);
            let mut interp = false;
            while let Some(w) = words.first() {
                if matches!(*w, "-n" | "-e" | "-E" | "-ne" | "-en") {
                    interp |= w.contains('e');
                    words.remove(0);
                } else {
                    break;
                }
            }
            let taint = args.iter().map(|a| a.taint).max().unwrap_or_default();
            let text = words.join(" ");
            if taint != Taint::Clean || text.contains(UNKNOWN) {
                return Flow::Unknown(taint.max(if text.contains(UNKNOWN) {
                    Taint::Clean
                } else {
                    taint
                }));
            }
            Flow::Text(if interp { unescape(&text) } else { text } + "\n")
        }
        "printf" => {
            let ops = strs(args);
            let ops: Vec<&str> = if ops.first() == Some(&"--") {
                ops[1..].to_vec()
            } else {
                ops
            };
            if ops.first() == Some(&"-v") {
                return Flow::Empty;
            }
            let taint = args.iter().map(|a| a.taint).max().unwrap_or_default();
            if taint != Taint::Clean || ops.iter().any(|o| o.contains(UNKNOWN)) {
                return Flow::Unknown(taint);
            }
            Flow::Text(printf(&ops))
        }
        "cat" | "tac" | "head" | "tail" | "tee" | "sort" | "uniq" | "cut" | "grep" | "egrep"
        | "fgrep" | "sed" | "awk" | "gawk" | "mawk" | "tr" | "rev" | "fold" | "paste" | "col"
        | "expand" | "unexpand" | "nl" | "fmt" | "iconv" | "dos2unix" | "jq" | "yq"
        | "envsubst" | "perl"
            if name != "perl" || is_filter_perl(args) =>
        {
            filter(az, st, name, args, input)
        }
        "base64" | "base32" | "basenc" | "xxd" | "uudecode" | "gunzip" | "zcat" | "bunzip2"
        | "bzcat" | "unxz" | "xzcat" | "unzstd" | "zstdcat" | "gzip" | "xz" | "zstd" | "bzip2"
        | "openssl" | "lzcat" | "brotli" | "od" | "hexdump" | "unlzma" => {
            let decodes = match name {
                "base64" | "base32" | "basenc" => {
                    has_flag(args, 'd', &["--decode"]) || has_flag(args, 'D', &[])
                }
                "xxd" => has_flag(args, 'r', &["--revert"]),
                "gzip" | "xz" | "zstd" | "bzip2" | "brotli" => {
                    has_flag(args, 'd', &["--decompress", "--decode"])
                }
                "openssl" => args
                    .iter()
                    .any(|a| a.s == "-d" || a.s == "-base64" || a.s == "base64" || a.s == "enc"),
                "od" | "hexdump" => false,
                _ => true,
            };
            if name == "openssl" && args.first().is_some_and(|a| a.s == "s_client") {
                return Flow::Unknown(Taint::Downloaded);
            }
            let files: Vec<&Field> = operands(
                args,
                &[
                    "-w", "-i", "-o", "-S", "-in", "-out", "-K", "-iv", "-k", "-pass", "-c", "-l",
                    "-s", "-g",
                ],
            );
            let src = files
                .iter()
                .filter(|f| name != "openssl" || f.s != "enc" && f.s != "base64")
                .map(|f| az.file_flow(st, f).taint())
                .max()
                .unwrap_or_default();
            let t = input.taint().max(src);
            Flow::Unknown(if decodes {
                t.max(Taint::Decoded)
            } else {
                t.max(Taint::Opaque)
            })
        }
        "curl" | "wget" | "fetch" | "http" | "https" | "httpie" | "aria2c" | "lwp-request"
        | "GET" | "lynx" | "w3m" | "links" | "nc" | "ncat" | "netcat" | "socat" | "scp"
        | "rsync" | "ftp" | "tftp" | "sftp" | "gsutil" | "s3cmd" | "xh" | "curlie"
            if name != "rsync"
                || args.iter().any(|a| {
                    a.s.contains("::")
                        || a.s.starts_with("rsync://")
                        || a.s.contains('@') && a.s.contains(':')
                }) =>
        {
            download(az, st, name, args)
        }
        "git" => {
            super::git::git(az, st, args);
            Flow::Unknown(Taint::Clean)
        }
        _ => {
            other(az, st, name, args, &input);
            Flow::Unknown(Taint::Clean)
        }
    }
}

fn is_filter_perl(args: &[Field]) -> bool {
    args.iter()
        .any(|a| a.s.starts_with("-p") || a.s.starts_with("-n") || a.s == "-pe" || a.s == "-ne")
        && !args.iter().any(|a| {
            a.s.contains("system")
                || a.s.contains("exec")
                || a.s.contains('`')
                || a.s.contains("unlink")
                || a.s.contains("rmtree")
        })
}

fn filter(az: &mut Analyzer<'_>, st: &mut State, name: &str, args: &[Field], input: Flow) -> Flow {
    // Files read by the filter.
    let valued: &[&str] = match name {
        "head" | "tail" => &["-n", "-c", "--lines", "--bytes"],
        "grep" | "egrep" | "fgrep" => &[
            "-e",
            "-f",
            "-m",
            "-A",
            "-B",
            "-C",
            "--regexp",
            "--file",
            "--max-count",
            "--include",
            "--exclude",
            "--exclude-dir",
        ],
        "cut" => &["-d", "-f", "-c", "-b", "--delimiter", "--fields"],
        "sort" => &["-k", "-t", "-o", "-S", "--key", "--output", "-T"],
        "sed" => &["-e", "-f", "--expression", "--file", "-l"],
        "awk" | "gawk" | "mawk" => &["-F", "-v", "-f", "--field-separator", "--assign"],
        "tee" => &[],
        "jq" | "yq" => &[
            "--arg",
            "--argjson",
            "-f",
            "--from-file",
            "--indent",
            "--slurpfile",
            "--rawfile",
        ],
        "fold" => &["-w"],
        "paste" => &["-d"],
        "nl" => &["-b", "-s", "-w"],
        "iconv" => &["-f", "-t"],
        _ => &[],
    };
    let mut ops = operands(args, valued);
    if matches!(
        name,
        "sed" | "awk" | "gawk" | "mawk" | "grep" | "egrep" | "fgrep" | "jq" | "yq" | "tr" | "perl"
    ) && !args
        .iter()
        .any(|a| a.s == "-e" || a.s == "-f" || a.s == "--expression" || a.s == "--regexp")
        && !ops.is_empty()
    {
        let prog = ops.remove(0);
        if matches!(name, "awk" | "gawk" | "mawk" | "sed" | "perl") {
            check_code(az, st, &prog.s);
        }
        if name == "tr" && !ops.is_empty() {
            ops.remove(0);
        }
    }
    if name == "sed" && has_flag(args, 'i', &["--in-place"])
        || name == "perl"
            && args
                .iter()
                .any(|a| a.s.starts_with("-pi") || a.s.starts_with("-i"))
    {
        for f in &ops {
            check_write(az, st, f, "in-place edit");
        }
        return Flow::Empty;
    }
    if name == "tee" {
        for f in &ops {
            check_write(az, st, f, "tee");
            if input.taint() >= Taint::Decoded {
                let key = super::analyze::file_key(st, &f.s);
                st.tainted_files.insert(key, input.taint());
            }
        }
        return input;
    }
    if name == "sort" {
        for a in args.windows(2) {
            if a[0].s == "-o" {
                check_write(az, st, &a[1], "sort -o");
            }
        }
    }
    let read: Flow = if ops.is_empty() || ops.iter().all(|o| o.s == "-") {
        input
    } else if ops.len() == 1 {
        az.file_flow(st, ops[0])
    } else {
        let t = ops
            .iter()
            .map(|o| az.file_flow(st, o).taint())
            .max()
            .unwrap_or_default();
        Flow::Unknown(t)
    };
    match (name, read) {
        (
            "cat" | "tac" | "head" | "tail" | "sort" | "uniq" | "grep" | "egrep" | "fgrep" | "fold"
            | "nl",
            Flow::Text(t),
        ) if name == "cat" => Flow::Text(t),
        (_, Flow::Text(_)) => Flow::Unknown(if name == "cat" {
            Taint::Clean
        } else {
            Taint::Opaque
        }),
        (_, Flow::Unknown(t)) => Flow::Unknown(
            if matches!(
                name,
                "tr" | "rev" | "sed" | "awk" | "gawk" | "mawk" | "perl" | "iconv"
            ) {
                t.max(Taint::Opaque)
            } else {
                t
            },
        ),
        (_, Flow::Empty) => Flow::Empty,
    }
}

fn download(az: &mut Analyzer<'_>, st: &mut State, name: &str, args: &[Field]) -> Flow {
    // Output files written with downloaded content.
    let mut to_file = false;
    let mut explicit_stdout = false;
    let out_letter = match name {
        "wget" => Some('O'),
        "curl" | "xh" | "curlie" | "aria2c" => Some('o'),
        _ => None,
    };
    let by_url_name = |st: &mut State| {
        for u in args.iter().filter(|u| u.s.contains("://")) {
            let base =
                u.s.split(['?', '#'])
                    .next()
                    .unwrap_or("")
                    .rsplit('/')
                    .next()
                    .unwrap_or("")
                    .to_string();
            let key = super::analyze::file_key(st, &base);
            st.tainted_files.insert(key, Taint::Downloaded);
        }
    };
    let mut k = 0;
    while k < args.len() {
        let a = args[k].s.as_str();
        let next = args.get(k + 1).map(|f| f.s.clone());
        let mut target: Option<String> = None;
        if let Some(v) = a
            .strip_prefix("--output-document=")
            .or_else(|| a.strip_prefix("--output="))
            .or_else(|| a.strip_prefix("--out="))
        {
            target = Some(v.to_string());
        } else if matches!(a, "--output-document" | "--output" | "--out") {
            target = next;
            k += 1;
        } else if a == "--remote-name" || a == "--remote-name-all" {
            to_file = true;
            by_url_name(st);
        } else if a.starts_with('-') && !a.starts_with("--") && a.len() > 1 {
            let cluster = &a[1..];
            if let Some(l) = out_letter
                && let Some(pos) = cluster.find(l)
            {
                let rest = &cluster[pos + 1..];
                target = if rest.is_empty() {
                    k += 1;
                    next
                } else {
                    Some(rest.to_string())
                };
            } else if name == "curl" && cluster.contains('O') {
                to_file = true;
                by_url_name(st);
            }
        }
        if let Some(t) = target {
            if t == "-" || t == "/dev/stdout" {
                explicit_stdout = true;
            } else {
                to_file = true;
                let f = Field::lit(&t);
                check_write(az, st, &f, "download");
                let key = super::analyze::file_key(st, &t);
                st.tainted_files.insert(key, Taint::Downloaded);
            }
        }
        k += 1;
    }
    if name == "wget" && !to_file && !explicit_stdout {
        to_file = true;
        by_url_name(st);
    }
    if name == "scp" || name == "rsync" || name == "sftp" || name == "gsutil" || name == "s3cmd" {
        if let Some(last) = args.last() {
            check_write(az, st, last, name);
            let key = super::analyze::file_key(st, &last.s);
            st.tainted_files.insert(key, Taint::Downloaded);
        }
        return Flow::Empty;
    }
    if to_file {
        Flow::Empty
    } else {
        Flow::Unknown(Taint::Downloaded)
    }
}

/// Everything else: interpreters, deletions, devices, permissions, data, deploys.
fn other(az: &mut Analyzer<'_>, st: &mut State, name: &str, args: &[Field], input: &Flow) {
    let n = name;
    if is_interpreter(n) {
        interpreter(az, st, n, args, input);
        return;
    }
    match n {
        "rm" | "unlink" | "srm" | "wipe" | "trash" | "trash-put" | "rmdir" => {
            let recursive = has_flag(args, 'r', &["--recursive"]) || has_flag(args, 'R', &[]);
            if args.iter().any(|a| a.s == "--no-preserve-root") {
                az.hit("rm-rf-root", "rm with --no-preserve-root");
            }
            for t in operands(args, &[]) {
                if n == "rmdir" {
                    continue;
                }
                delete_target(az, st, t, recursive, "deletion");
            }
        }
        "shred" => {
            for t in operands(
                args,
                &["-n", "-s", "--iterations", "--size", "--random-source"],
            ) {
                let pl = place(st, &t.s);
                if pl != Place::Ordinary {
                    delete_target(az, st, t, true, "shred");
                }
            }
        }
        "mv" => {
            let ops = operands(args, &["-t", "--target-directory", "-S", "--suffix"]);
            let (srcs, dst) = match ops.split_last() {
                Some((d, s)) => (s.to_vec(), Some(*d)),
                None => (Vec::new(), None),
            };
            for s in srcs {
                delete_target(az, st, s, true, "move");
            }
            if let Some(d) = dst {
                check_write(az, st, d, "move destination");
            }
        }
        "cp" | "install" | "ln" | "rsync" | "dd" | "truncate" | "fallocate" | "split" | "tar"
        | "unzip" | "ditto" | "cpio" => {
            copy_like(az, st, n, args);
        }
        "chmod" | "chown" | "chgrp" | "setfacl" | "chattr" | "chcon" => {
            let recursive = has_flag(args, 'R', &["--recursive"])
                || (n == "setfacl" && has_flag(args, 'R', &[]));
            let mut ops = operands(args, &["--reference", "-m", "-x", "-M", "-X"]);
            if !ops.is_empty()
                && (n != "setfacl")
                && !args.iter().any(|a| a.s.starts_with("--reference"))
            {
                ops.remove(0);
            }
            for t in ops {
                let pl = place(st, &t.s);
                let own_home_file = t.s.starts_with("~/") && t.s.trim_end_matches('/') != "~";
                let bad = (matches!(pl, Place::Root | Place::Home | Place::Device)
                    && !own_home_file)
                    || (pl == Place::System)
                    || (pl == Place::Unknown && recursive);
                if bad {
                    let rule = if n == "chmod" {
                        "chmod-777-root"
                    } else {
                        "chown-system"
                    };
                    az.hit(
                        rule,
                        format!("{n} of / , the home directory or a system path"),
                    );
                }
            }
        }
        "mkfs" | "mke2fs" | "mkswap" | "mkdosfs" | "mkntfs" | "mkexfatfs" | "wipefs" | "fdisk"
        | "sfdisk" | "sgdisk" | "gdisk" | "cfdisk" | "parted" | "partprobe" | "blkdiscard"
        | "cryptsetup" | "lvremove" | "vgremove" | "pvremove" | "pvcreate" | "vgcreate"
        | "lvcreate" | "mdadm" | "zpool" | "zfs" | "btrfs" | "tune2fs" | "e2fsck" | "fsck"
        | "xfs_repair" | "resize2fs" | "losetup" | "dmsetup" | "hdparm" | "sdparm" | "nvme"
        | "badblocks" | "mount" | "umount" | "swapoff" | "swapon" | "debugfs" | "flashrom" => {
            let read_only = match n {
                "fdisk" | "sfdisk" | "parted" | "gdisk" | "sgdisk" => args
                    .iter()
                    .any(|a| a.s == "-l" || a.s == "--list" || a.s == "-p" || a.s == "print"),
                "zfs" | "zpool" | "btrfs" => args.first().is_some_and(|a| {
                    matches!(a.s.as_str(), "list" | "status" | "get" | "show" | "iostat")
                }),
                "nvme" => args
                    .first()
                    .is_some_and(|a| matches!(a.s.as_str(), "list" | "id-ctrl" | "smart-log")),
                "hdparm" => !args.iter().any(|a| {
                    a.s.contains("security-erase")
                        || a.s.contains("--trim")
                        || a.s == "-W"
                        || a.s.contains("--write")
                }),
                "badblocks" => !has_flag(args, 'w', &[]),
                "mount" => args.is_empty(),
                _ => false,
            };
            if !read_only {
                let rule = if n.starts_with("mk")
                    || matches!(
                        n,
                        "wipefs"
                            | "fdisk"
                            | "sfdisk"
                            | "sgdisk"
                            | "gdisk"
                            | "cfdisk"
                            | "parted"
                            | "cryptsetup"
                            | "pvcreate"
                            | "vgcreate"
                            | "lvcreate"
                    ) {
                    "mkfs"
                } else {
                    "dd-device"
                };
                az.hit(
                    rule,
                    format!("{n} changes disks, partitions or filesystems"),
                );
            }
        }
        n if n.starts_with("mkfs.") || n.starts_with("mke2fs") || n.starts_with("fsck.") => {
            az.hit("mkfs", "creating or rewriting a filesystem");
        }
        "kill" | "killall" | "pkill" | "killall5" => {
            let ops = strs(args);
            if ops.iter().any(|o| {
                *o == "-1" && n == "kill" && ops.iter().filter(|x| !x.starts_with('-')).count() == 0
                    || *o == "1" && n == "kill"
            }) || ops.contains(&"--") && ops.contains(&"-1")
                || n == "killall5"
                || (n == "kill"
                    && ops
                        .windows(2)
                        .any(|w| w[0].starts_with('-') && w[1] == "-1"))
            {
                az.hit("system-power", "kills every process or init");
            }
        }
        "shutdown" | "reboot" | "halt" | "poweroff" | "init" | "telinit" => {
            if n != "init" && n != "telinit"
                || args.first().is_some_and(|a| a.s == "0" || a.s == "6")
            {
                az.hit("system-power", "shuts down or reboots the machine");
            }
        }
        "systemctl" | "service" | "rc-service" | "launchctl" => {
            let ops = strs(args);
            if ops.iter().any(|o| {
                matches!(
                    *o,
                    "poweroff" | "reboot" | "halt" | "kexec" | "emergency" | "rescue"
                )
            }) {
                az.hit("system-power", "shuts down or reboots the machine");
            }
            let stop = ops
                .iter()
                .any(|o| matches!(*o, "stop" | "disable" | "mask" | "kill"));
            if stop
                && ops.iter().any(|o| {
                    o.contains("audit")
                        || o.contains("firewall")
                        || o.contains("ufw")
                        || o.contains("apparmor")
                        || o.contains("selinux")
                        || o.contains("fail2ban")
                        || o.contains("crowdsec")
                        || o.contains("falco")
                        || o.contains("osquery")
                })
            {
                az.hit(
                    "security-feature-change",
                    "stops or disables a security or audit service",
                );
            }
        }
        "setenforce" | "aa-disable" | "aa-complain" | "auditctl" | "ufw" | "iptables"
        | "ip6tables" | "nft" | "firewall-cmd" => {
            let ops = strs(args);
            let weak = match n {
                "setenforce" => ops
                    .first()
                    .is_some_and(|o| *o == "0" || o.eq_ignore_ascii_case("permissive")),
                "auditctl" => {
                    ops.contains(&"-D") || ops.windows(2).any(|w| w[0] == "-e" && w[1] == "0")
                }
                "ufw" => ops.iter().any(|o| *o == "disable" || *o == "reset"),
                "iptables" | "ip6tables" => {
                    ops.iter()
                        .any(|o| *o == "-F" || *o == "--flush" || *o == "-X")
                        || ops.windows(3).any(|w| w[0] == "-P" && w[2] == "ACCEPT")
                }
                "nft" => ops.contains(&"flush"),
                "firewall-cmd" => ops
                    .iter()
                    .any(|o| o.contains("panic") || o.contains("set-default-zone=trusted")),
                _ => true,
            };
            if weak {
                az.hit(
                    "security-feature-change",
                    "disables a firewall, audit or mandatory access control",
                );
            }
        }
        "crontab" => {
            if has_flag(args, 'r', &[]) {
                az.hit("system-write", "removes every cron job");
            }
        }
        "journalctl" => {
            if args.iter().any(|a| a.s.starts_with("--vacuum")) {
                az.hit("audit-log-removal", "deletes system logs");
            }
        }
        "passwd" | "chpasswd" | "usermod" | "useradd" | "userdel" | "groupadd" | "groupdel"
        | "gpasswd" | "visudo" | "adduser" | "deluser" => {
            az.hit(
                "permission-change",
                "changes system users, groups or passwords",
            );
        }
        "apt" | "apt-get" | "yum" | "dnf" | "apk" | "zypper" | "pacman" | "brew" | "snap"
        | "dpkg" => {
            let ops = strs(args);
            if ops.iter().any(|o| {
                matches!(
                    *o,
                    "remove"
                        | "purge"
                        | "autoremove"
                        | "erase"
                        | "del"
                        | "-R"
                        | "-Rns"
                        | "-r"
                        | "--purge"
                )
            }) && ops.iter().any(|o| {
                matches!(
                    *o,
                    "sudo"
                        | "systemd"
                        | "coreutils"
                        | "bash"
                        | "libc6"
                        | "glibc"
                        | "openssh-server"
                        | "linux-image"
                        | "apt"
                        | "dpkg"
                        | "login"
                        | "passwd"
                        | "util-linux"
                        | "init"
                )
            }) {
                az.hit("rm-rf-root", "removes an essential system package");
            }
        }
        "sqlite3" | "psql" | "mysql" | "mariadb" | "sqlcmd" | "clickhouse-client"
        | "clickhouse" | "cockroach" | "duckdb" | "mongosh" | "mongo" | "redis-cli" | "bq"
        | "snowsql" | "pgcli" | "mycli" | "litecli" | "usql" | "isql" | "sqlplus" | "db2"
        | "cqlsh" | "influx" | "trino" | "presto" | "spark-sql" | "hive" | "beeline" | "dropdb"
        | "mysqladmin" | "pg_restore" | "mongo-shell" | "valkey-cli" | "keydb-cli" | "turso"
        | "wrangler-d1" | "supabase" | "prisma" | "rails" | "rake" | "manage.py"
        | "django-admin" | "sequelize" | "typeorm" | "knex" | "drizzle-kit" | "alembic"
        | "flyway" | "liquibase" | "migrate" | "dbmate" | "goose" | "atlas" | "sqitch"
        | "diesel" | "sqlx" | "artisan" | "mix" | "ecto" => {
            sql::client(az, st, n, args, input);
        }
        "npm" | "pnpm" | "yarn" | "bun" | "corepack" => {
            super::pkg::package_manager(az, st, n, args);
        }
        "make" | "gmake" | "just" | "task" | "mage" | "invoke" | "nox" | "tox" | "rake-task"
        | "cargo-make" => {
            super::pkg::make(az, st, n, args);
        }
        "concurrently" | "npm-run-all" | "run-s" | "run-p" => {
            super::pkg::runner(az, st, n, args);
        }
        "docker" | "podman" | "nerdctl" | "kubectl" | "oc" | "microk8s" | "k3s" => {
            if let Some(inner) = deploy::container_exec(n, args) {
                let mut inner_st = State::new();
                az.run(&mut inner_st, inner, input.clone());
            }
            deploy::deploy(az, st, n, args);
        }
        _ => {
            deploy::deploy(az, st, n, args);
            if n.ends_with(".sh") || n.ends_with(".py") || n.ends_with(".js") {
                // A bare script name found through PATH: nothing to follow.
            }
        }
    }
}

fn copy_like(az: &mut Analyzer<'_>, st: &mut State, n: &str, args: &[Field]) {
    match n {
        "dd" => {
            for a in args {
                if let Some(of) = a.s.strip_prefix("of=") {
                    check_write(
                        az,
                        st,
                        &Field {
                            s: of.to_string(),
                            taint: a.taint,
                        },
                        "dd",
                    );
                }
            }
        }
        "truncate" | "fallocate" => {
            for t in operands(
                args,
                &[
                    "-s",
                    "--size",
                    "-r",
                    "--reference",
                    "-l",
                    "-o",
                    "--length",
                    "--offset",
                ],
            ) {
                check_write(az, st, t, n);
            }
        }
        "tar" | "unzip" | "cpio" => {
            for w in args.windows(2) {
                if (w[0].s == "-C" || w[0].s == "--directory" || w[0].s == "-d" && n == "unzip")
                    && (place(st, &w[1].s) == Place::Root || place(st, &w[1].s) == Place::System)
                {
                    az.hit(
                        "system-write",
                        format!("{n} extracts over a system directory"),
                    );
                }
            }
            if n == "tar" && args.iter().any(|a| a.s == "--remove-files") {
                for t in operands(
                    args,
                    &["-f", "-C", "--file", "--directory", "-T", "-X", "--exclude"],
                ) {
                    delete_target(az, st, t, true, "tar --remove-files");
                }
            }
        }
        "rsync" => {
            let ops = operands(
                args,
                &[
                    "-e",
                    "--rsh",
                    "--exclude",
                    "--include",
                    "--filter",
                    "-f",
                    "--files-from",
                    "--chmod",
                    "--chown",
                    "-B",
                    "--block-size",
                    "--log-file",
                    "--password-file",
                    "--rsync-path",
                    "--link-dest",
                    "--compare-dest",
                    "--backup-dir",
                    "--suffix",
                    "--bwlimit",
                    "--timeout",
                    "--port",
                    "--max-size",
                    "--min-size",
                ],
            );
            if let Some(d) = ops.last() {
                if args.iter().any(|a| {
                    a.s.starts_with("--delete") || a.s.starts_with("--remove-source-files")
                }) {
                    delete_target(az, st, d, true, "rsync --delete");
                }
                check_write(az, st, d, "rsync");
            }
        }
        _ => {
            let ops = operands(
                args,
                &[
                    "-t",
                    "--target-directory",
                    "-S",
                    "--suffix",
                    "-m",
                    "--mode",
                    "-o",
                    "--owner",
                    "-g",
                    "--group",
                    "-n",
                    "-l",
                    "-b",
                    "-d",
                    "-a",
                    "-C",
                ],
            );
            if let Some(d) = ops.last()
                && ops.len() >= 2
            {
                check_write(az, st, d, n);
            }
        }
    }
}

fn interpreter(az: &mut Analyzer<'_>, st: &mut State, n: &str, args: &[Field], input: &Flow) {
    // Inline code.
    let code_flags = [
        "-c", "-e", "-E", "--eval", "-r", "-p", "--print", "-x", "-M", "-pe", "-ne", "-le",
    ];
    let mut k = 0;
    while k < args.len() {
        let a = args[k].s.as_str();
        if code_flags.contains(&a) && !(n.starts_with("python") && (a == "-E" || a == "-x")) {
            if let Some(code) = args.get(k + 1) {
                if code.taint >= Taint::Opaque {
                    az.taint_exec(code.taint, "an interpreter runs decoded or downloaded code");
                } else if !code.known()
                    && (n.starts_with("python") || n == "node" || n == "perl" || n == "ruby")
                {
                    // Code assembled at run time.
                    if code.s.trim() == UNKNOWN.to_string() {
                        az.hit(
                            "eval-dynamic",
                            "an interpreter runs code only known at run time",
                        );
                    }
                }
                check_code(az, st, &code.s);
            }
            return;
        }
        if a == "-m" && n.starts_with("python") {
            // `python -m module`: a module, maybe a deploy tool.
            if let Some(m) = args.get(k + 1) {
                let mut v = vec![m.clone()];
                v.extend(args[k + 2..].iter().cloned());
                let mname = m.s.clone();
                if matches!(
                    mname.as_str(),
                    "twine"
                        | "awscli"
                        | "pulumi"
                        | "ansible"
                        | "http.server"
                        | "pip"
                        | "pytest"
                        | "venv"
                        | "build"
                        | "mypy"
                        | "black"
                        | "ruff"
                        | "flake8"
                        | "unittest"
                ) {
                    v[0] = Field::lit(if mname == "awscli" { "aws" } else { &mname });
                    let mut inner = st.clone();
                    az.run(&mut inner, v, Flow::Empty);
                }
            }
            return;
        }
        if !a.starts_with('-') || a == "-" {
            break;
        }
        if matches!(
            a,
            "-W" | "-X"
                | "--require"
                | "-r"
                | "-I"
                | "--import"
                | "--loader"
                | "-O"
                | "--allow-read"
                | "--allow-net"
        ) && !code_flags.contains(&a)
        {
            k += 1;
        }
        k += 1;
    }
    let script = args.get(k);
    match script {
        None => {
            // Reads its program from stdin.
            match input {
                Flow::Text(t) => {
                    let t = t.clone();
                    check_code(az, st, &t);
                }
                Flow::Unknown(Taint::Clean) => az.hit(
                    "decode-pipe-shell",
                    "an interpreter runs code from a pipe the analyser cannot follow",
                ),
                Flow::Unknown(t) => az.taint_exec(*t, "an interpreter runs code from a pipe"),
                Flow::Empty => {}
            }
        }
        Some(f) if f.s == "-" || f.s == "/dev/stdin" => match input {
            Flow::Text(t) => {
                let t = t.clone();
                check_code(az, st, &t);
            }
            Flow::Unknown(Taint::Clean) => az.hit(
                "decode-pipe-shell",
                "an interpreter runs code from a pipe the analyser cannot follow",
            ),
            Flow::Unknown(t) => az.taint_exec(*t, "an interpreter runs code from a pipe"),
            Flow::Empty => {}
        },
        Some(f) => {
            if n == "deno" || n == "bun" {
                if matches!(f.s.as_str(), "run" | "x")
                    && let Some(u) = args.get(k + 1)
                    && u.s.contains("://")
                {
                    az.hit("curl-pipe-shell", "runs a script straight from a URL");
                }
                if n == "bun" {
                    super::pkg::package_manager(az, st, n, args);
                }
                return;
            }
            if f.s.contains("://") {
                az.hit("curl-pipe-shell", "runs a script straight from a URL");
                return;
            }
            let key = super::analyze::file_key(st, &f.s);
            if let Some(t) = st.tainted_files.get(&key).copied() {
                az.taint_exec(
                    t,
                    "an interpreter runs a file written from downloaded or decoded text",
                );
                return;
            }
            if f.s.starts_with("/dev/fd/") {
                let fl = az.file_flow(st, f);
                match fl {
                    Flow::Text(t) => check_code(az, st, &t),
                    Flow::Unknown(t) => az.taint_exec(
                        t.max(Taint::Opaque),
                        "an interpreter runs the output of a process",
                    ),
                    Flow::Empty => {}
                }
                return;
            }
            if let Some(c) = st.written.get(&key).cloned() {
                check_code(az, st, &c);
            } else if let Some(c) = az.workspace_file(st, &f.s)
                && az.followed.insert(format!("code:{key}"))
            {
                check_code(az, st, c);
            }
            // manage.py and friends.
            if f.s.ends_with("manage.py") {
                sql::client(az, st, "manage.py", &args[k + 1..], input);
            }
        }
    }
}

/// Checks program text of an interpreter (Python, Node, Perl, Ruby, awk…): shell commands in
/// its string literals when it runs a shell, SQL it sends, and deletions of / or home.
pub fn check_code(az: &mut Analyzer<'_>, st: &mut State, code: &str) {
    use std::sync::LazyLock;
    static RUNS: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"(?i)(\bsystem\s*\(|\bpopen|\bexec(sync|file|v|l|vp|lp)?\s*\(|\bspawn(sync)?\s*\(|subprocess|\bcall\s*\(|check_output|check_call|\brun\s*\(|`|\bshell_exec|\bpassthru|%x|qx|\bos\.system|child_process|\bopen\s*\(\s*['\x22]\|)").unwrap()
    });
    static DELETES: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r#"(?i)(rmtree|remove_tree|rm_r|rmsync|rmdirsync|\brm\s*\(|rimraf|remove_dir_all|unlink|rm_rf|\bdelete\b|removedirs|\bremove\s*\()\s*\(?\s*(glob\s*\(?\s*)?(['"](/|~|/\*|/home|/etc|/usr|/var)['"/*]|(require\(\s*['"]os['"]\s*\))?\.homedir\(\)|os\.path\.expanduser\(\s*['"]~['"]\s*\)|process\.env\.HOME|os\.homedir\(\)|Path\.home\(\)|ENV\[.HOME.\]|\$ENV\{HOME\})"#).unwrap()
    });
    static FORK: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"(?i)(while\s*(true|1|\(\s*1\s*\)|:)[^\n]{0,40}fork|fork\s*(\(\s*\))?\s*(while|until)|for\s*\(\s*;\s*;\s*\)\s*\{?\s*fork|fork\s*\(\s*\)\s*;?\s*\}?\s*while|loop\s*\{?\s*fork)").unwrap()
    });
    if az.nest > 12 {
        return;
    }
    if FORK.is_match(code) {
        az.hit("fork-bomb", "program code that forks in an endless loop");
    }
    if DELETES.is_match(code) {
        az.hit(
            "rm-rf-root",
            "program code deletes /, the home directory or a system path",
        );
    }
    sql::check_sql(az, code, false);
    static DECODES: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"(?i)(b64decode|base64|atob\s*\(|fromcharcode|unhexlify|bytes\.fromhex|codecs\.decode|rot13|decompress|unpack\s*\(|\\x[0-9a-f]{2}.*\\x[0-9a-f]{2}|chr\s*\(\s*\d+\s*\)\s*\+)").unwrap()
    });
    static FETCHED: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"(?i)(urlopen|requests\.get|urllib|fetch\s*\(|http\.get|https\.get|net::http|open-uri|lwp::simple|file_get_contents\s*\(\s*['\x22]https?:|httpx\.get|axios)").unwrap()
    });
    static EVAL: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"(?i)(\bexec\s*\(|\beval\b|new\s+Function|\bcompile\s*\(|instance_eval|\bsystem\s*\(|\bload\s*\()").unwrap()
    });
    static LIST2: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(
            r#"(['"][^'"]+['"])\s*,\s*\[\s*((?:['"][^'"]*['"]\s*,\s*)*['"][^'"]*['"])\s*,?\s*\]"#,
        )
        .unwrap()
    });
    if FETCHED.is_match(code) && EVAL.is_match(code) {
        az.hit("curl-pipe-shell", "program code runs downloaded code");
    }
    for c in LIST2.captures_iter(code) {
        let mut words = string_literals(&c[1]);
        words.extend(string_literals(&c[2]));
        let joined = words
            .iter()
            .map(|w| shell_quote(w))
            .collect::<Vec<_>>()
            .join(" ");
        let mut inner = st.clone();
        let saved = az.hits.len();
        az.script(&mut inner, &joined);
        let new: Vec<_> = az.hits.drain(saved..).collect();
        for h in new {
            if !matches!(
                h.rule,
                "parse-error"
                    | "dynamic-command"
                    | "eval-dynamic"
                    | "decode-pipe-shell"
                    | "too-deep"
            ) {
                az.hits.push(h);
            }
        }
    }
    static LIST: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r#"\[\s*((?:['"][^'"]*['"]\s*,\s*)+['"][^'"]*['"])\s*,?\s*\]"#).unwrap()
    });
    let runs = RUNS.is_match(code) || code.contains("exec(") || code.contains("eval(");
    if runs && DECODES.is_match(code) {
        az.hit(
            "decode-pipe-shell",
            "program code runs decoded or obfuscated text",
        );
    }
    if RUNS.is_match(code) {
        for c in LIST.captures_iter(code) {
            let words: Vec<String> = string_literals(&c[1]).into_iter().step_by(1).collect();
            let joined = words
                .iter()
                .map(|w| shell_quote(w))
                .collect::<Vec<_>>()
                .join(" ");
            let mut inner = st.clone();
            let saved = az.hits.len();
            az.script(&mut inner, &joined);
            let new: Vec<_> = az.hits.drain(saved..).collect();
            for h in new {
                if !matches!(
                    h.rule,
                    "parse-error"
                        | "dynamic-command"
                        | "eval-dynamic"
                        | "decode-pipe-shell"
                        | "too-deep"
                ) {
                    az.hits.push(h);
                }
            }
        }
        for lit in string_literals(code) {
            if lit.len() < 2 {
                continue;
            }
            if (RUNS.is_match(&lit) || lit.contains("exec(")) && az.nest < 8 {
                az.nest += 1;
                check_code(az, st, &lit);
                az.nest -= 1;
            }
            let mut inner = st.clone();
            let saved = az.hits.len();
            az.script(&mut inner, &lit);
            // A literal that is not shell (a message, a path) must not fail closed.
            az.hits.retain_mut(|_| true);
            let new: Vec<_> = az.hits.drain(saved..).collect();
            for h in new {
                if !matches!(
                    h.rule,
                    "parse-error"
                        | "dynamic-command"
                        | "eval-dynamic"
                        | "decode-pipe-shell"
                        | "too-deep"
                ) {
                    az.hits.push(h);
                }
            }
        }
    }
}

/// String literals in program text ('…', "…", `…`), undoing simple escapes and joining
/// adjacent literals concatenated with `+` or `.`.
pub fn string_literals(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let cs: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < cs.len() && out.len() < 64 {
        let q = cs[i];
        if q == '\'' || q == '"' || q == '`' {
            let mut s = String::new();
            let mut j = i + 1;
            while j < cs.len() && cs[j] != q {
                if cs[j] == '\\' && j + 1 < cs.len() {
                    j += 1;
                    s.push(match cs[j] {
                        'n' => '\n',
                        't' => '\t',
                        c => c,
                    });
                } else {
                    s.push(cs[j]);
                }
                j += 1;
            }
            // Concatenation: "a" + "b", 'a' . 'b'
            let mut k = j + 1;
            while k < cs.len() && cs[k] == ' ' {
                k += 1;
            }
            out.push(s);
            if k < cs.len() && (cs[k] == '+' || cs[k] == '.') {
                // Merge with the next literal.
                let mut m = k + 1;
                while m < cs.len() && cs[m] == ' ' {
                    m += 1;
                }
                if m < cs.len() && (cs[m] == '\'' || cs[m] == '"') {
                    let nexts = string_literals(&cs[m..].iter().collect::<String>());
                    if let (Some(first), Some(last)) = (nexts.first(), out.last_mut()) {
                        last.push_str(first);
                        let joined = last.clone();
                        out.push(joined);
                    }
                }
            }
            i = j + 1;
        } else {
            i += 1;
        }
    }
    out
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            Some('x') => {
                let mut v = 0u32;
                for _ in 0..2 {
                    match it.peek().and_then(|c| c.to_digit(16)) {
                        Some(d) => {
                            v = v * 16 + d;
                            it.next();
                        }
                        None => break,
                    }
                }
                out.push(char::from_u32(v).unwrap_or('?'));
            }
            Some('0') => {
                let mut v = 0u32;
                for _ in 0..3 {
                    match it.peek().and_then(|c| c.to_digit(8)) {
                        Some(d) => {
                            v = v * 8 + d;
                            it.next();
                        }
                        None => break,
                    }
                }
                out.push(char::from_u32(v).unwrap_or('?'));
            }
            Some(d @ '1'..='7') => {
                let mut v = d.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match it.peek().and_then(|c| c.to_digit(8)) {
                        Some(d) => {
                            v = v * 8 + d;
                            it.next();
                        }
                        None => break,
                    }
                }
                out.push(char::from_u32(v).unwrap_or('?'));
            }
            Some(c) => {
                out.push('\\');
                out.push(c);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// `printf FORMAT ARGS…` with %s/%b/%c/%d and escapes.
fn printf(ops: &[&str]) -> String {
    let Some(fmt) = ops.first() else {
        return String::new();
    };
    let fmt = unescape(fmt);
    let mut args = ops[1..].iter();
    let mut out = String::new();
    let mut rounds = 0;
    loop {
        let mut it = fmt.chars().peekable();
        let mut used = false;
        while let Some(c) = it.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            // Skip flags/width.
            while it
                .peek()
                .is_some_and(|c| c.is_ascii_digit() || "-+ #.".contains(*c))
            {
                it.next();
            }
            match it.next() {
                Some('%') => out.push('%'),
                Some('b') => {
                    used = true;
                    out.push_str(&unescape(args.next().copied().unwrap_or("")));
                }
                Some('c') => {
                    used = true;
                    if let Some(ch) = args.next().and_then(|a| a.chars().next()) {
                        out.push(ch);
                    }
                }
                Some(_) => {
                    used = true;
                    out.push_str(args.next().copied().unwrap_or(""));
                }
                None => out.push('%'),
            }
        }
        rounds += 1;
        if !used || args.len() == 0 || rounds > 16 {
            break;
        }
    }
    out
}
