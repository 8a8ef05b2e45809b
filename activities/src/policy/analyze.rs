//! Walks a parsed command line as a shell would run it: expands words with what is known
//! (variables, literal command substitutions, `$IFS`, brace expansion, tilde), follows the
//! working directory, functions and aliases, resolves the command word through wrappers, and
//! follows what flows through pipes. The effect checks in [`super::effects`] report [`Hit`]s.
//!
//! Anything it cannot follow is reported as a hit of a fail-closed rule, never skipped.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use super::shell::{self, Cmd, List, ParseError, Part, Redir, RedirOp, Simple, Word};
use super::{Hit, PolicyContext};

/// A placeholder for text only known at run time.
pub const UNKNOWN: char = '\u{1}';

/// How deep scripts inside scripts (`sh -c`, `eval`, package scripts, make recipes) are
/// followed; deeper is refused.
const MAX_NEST: usize = 12;
/// Total simple commands analysed for one decision; more is refused (bounded work).
const MAX_STEPS: usize = 4000;
/// Longer variable values (and expanded words) are treated as unknown.
const MAX_VALUE: usize = 8192;

/// Where a piece of text came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Taint {
    #[default]
    Clean,
    /// Transformed by a filter the analyser does not follow (sed, tr, rev, …).
    Opaque,
    /// Decoded or decompressed (base64 -d, xxd -r, gunzip, …).
    Decoded,
    /// Downloaded (curl, wget, …).
    Downloaded,
}

/// One expanded word.
#[derive(Debug, Clone, Default)]
pub struct Field {
    pub s: String,
    pub taint: Taint,
}

impl Field {
    pub fn lit(s: &str) -> Field {
        Field {
            s: s.to_string(),
            taint: Taint::Clean,
        }
    }
    pub fn known(&self) -> bool {
        !self.s.contains(UNKNOWN)
    }
}

/// What a command writes to its stdout, as far as the analyser can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    /// Nothing interesting (or nothing at all).
    Empty,
    /// Known text (e.g. `echo …`, a here-doc, a workspace file).
    Text(String),
    /// Text the analyser cannot see, with the worst origin it may have.
    Unknown(Taint),
}

impl Flow {
    pub fn taint(&self) -> Taint {
        match self {
            Flow::Unknown(t) => *t,
            _ => Taint::Clean,
        }
    }
}

/// The working directory: an absolute normalised path (`~` for home), or unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cwd {
    At(String),
    Unknown,
}

#[derive(Debug, Clone)]
pub struct Var {
    pub text: String,
    pub taint: Taint,
}

/// What the shell being analysed knows at a point of the command line.
#[derive(Clone)]
pub struct State {
    pub vars: HashMap<String, Var>,
    pub cwd: Cwd,
    pub funcs: HashMap<String, Rc<List>>,
    pub aliases: HashMap<String, String>,
    /// Files written from downloaded or decoded text.
    pub tainted_files: HashMap<String, Taint>,
    /// Files written from known text by this command line.
    pub written: HashMap<String, String>,
}

impl State {
    pub fn new() -> State {
        let mut vars = HashMap::new();
        for (k, v) in [
            ("IFS", " \t\n"),
            ("HOME", "~"),
            ("PWD", "/workspace"),
            ("SHELL", "/bin/sh"),
        ] {
            vars.insert(
                k.to_string(),
                Var {
                    text: v.to_string(),
                    taint: Taint::Clean,
                },
            );
        }
        State {
            vars,
            cwd: Cwd::At("/workspace".into()),
            funcs: HashMap::new(),
            aliases: HashMap::new(),
            tainted_files: HashMap::new(),
            written: HashMap::new(),
        }
    }
}

pub struct Analyzer<'c> {
    pub ctx: &'c PolicyContext<'c>,
    pub hits: Vec<Hit>,
    pub nest: usize,
    steps: usize,
    /// Functions being run, to spot self-recursion.
    calling: Vec<String>,
    /// Package scripts / make targets already followed (cycles, repeats).
    pub followed: HashSet<String>,
    /// Alias names being expanded.
    expanding: Vec<String>,
}

impl<'c> Analyzer<'c> {
    pub fn new(ctx: &'c PolicyContext<'c>) -> Analyzer<'c> {
        Analyzer {
            ctx,
            hits: Vec::new(),
            nest: 0,
            steps: 0,
            calling: Vec::new(),
            followed: HashSet::new(),
            expanding: Vec::new(),
        }
    }

    pub fn hit(&mut self, rule: &'static str, why: impl Into<String>) {
        if self.hits.len() < 64 && !self.hits.iter().any(|h| h.rule == rule) {
            self.hits.push(Hit {
                rule,
                why: why.into(),
            });
        }
    }

    /// Parses and analyses a script (the top-level command, `sh -c` text, a package script…).
    pub fn script(&mut self, st: &mut State, text: &str) {
        if self.nest > MAX_NEST {
            self.hit(
                "too-deep",
                "scripts nested inside scripts deeper than the analyser follows",
            );
            return;
        }
        match shell::parse(text) {
            Ok(list) => {
                self.nest += 1;
                self.list(st, &list);
                self.nest -= 1;
            }
            Err(ParseError::TooDeep) => self.hit(
                "too-deep",
                "subshells or substitutions nested deeper than the analyser follows",
            ),
            Err(ParseError::Syntax(m)) => self.hit(
                "parse-error",
                format!("the shell text cannot be read completely ({m})"),
            ),
        }
    }

    pub fn list(&mut self, st: &mut State, list: &List) {
        for pl in list {
            let mut input = Flow::Empty;
            let n = pl.cmds.len();
            for (k, c) in pl.cmds.iter().enumerate() {
                let piped = n > 1;
                let _ = k;
                input = self.cmd(st, c, input, piped);
            }
        }
    }

    fn cmd(&mut self, st: &mut State, c: &Cmd, input: Flow, piped: bool) -> Flow {
        match c {
            Cmd::Simple(s) => self.simple(st, s, input),
            Cmd::Subshell(l) => {
                let mut inner = st.clone();
                let out = self.list_flow_in(&mut inner, l, input);
                // Taint learnt inside still matters for files it wrote.
                st.tainted_files.extend(inner.tainted_files);
                st.written.extend(inner.written);
                out
            }
            Cmd::Group(l) => {
                if piped {
                    let mut inner = st.clone();
                    self.list_flow_in(&mut inner, l, input)
                } else {
                    self.list_flow_in(st, l, input)
                }
            }
            Cmd::Func(name, body) => {
                if calls_itself(name, body) {
                    self.hit(
                        "fork-bomb",
                        "a function that runs itself (fork bomb / runaway recursion)",
                    );
                }
                st.funcs.insert(name.clone(), Rc::new(body.clone()));
                // Analyse the body where it is defined: what it would do if called.
                let mut inner = st.clone();
                self.calling.push(name.clone());
                self.list(&mut inner, body);
                self.calling.pop();
                Flow::Empty
            }
            Cmd::For(name, words) => {
                let mut all = Vec::new();
                for w in words {
                    all.extend(self.expand(st, w).into_iter().map(|f| f.s));
                }
                st.vars.insert(
                    name.clone(),
                    Var {
                        text: all.join(" "),
                        taint: Taint::Clean,
                    },
                );
                Flow::Empty
            }
        }
    }

    fn simple(&mut self, st: &mut State, s: &Simple, mut input: Flow) -> Flow {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            self.hit(
                "too-deep",
                "the command line expands to more commands than the analyser follows",
            );
            return Flow::Unknown(Taint::Clean);
        }
        for (name, w) in &s.assigns {
            let mut fs = self.expand_joined(st, w);
            if fs.s.len() > MAX_VALUE {
                fs.s = UNKNOWN.to_string();
            }
            if runs_shell_var(name) && !fs.s.is_empty() {
                super::effects::run_script(self, st, &fs);
            }
            st.vars.insert(
                name.clone(),
                Var {
                    text: fs.s,
                    taint: fs.taint,
                },
            );
        }
        let mut argv = Vec::new();
        for w in &s.words {
            argv.extend(self.expand(st, w));
        }
        let mut out_targets = Vec::new();
        for r in &s.redirs {
            if let Some(f) = self.redirect(st, r, &mut input) {
                out_targets.push((f, r.op == RedirOp::Append));
            }
        }
        if argv.is_empty() {
            return Flow::Empty;
        }
        let out = self.run(st, argv, input);
        for (t, append) in &out_targets {
            let key = file_key(st, &t.s);
            match &out {
                Flow::Text(text) => {
                    let e = st.written.entry(key).or_default();
                    if !append {
                        e.clear();
                    }
                    e.push_str(text);
                }
                Flow::Unknown(taint) => {
                    st.written.remove(&key);
                    st.tainted_files.insert(key, (*taint).max(Taint::Opaque));
                }
                Flow::Empty => {}
            }
        }
        if !out_targets.is_empty() {
            return Flow::Empty;
        }
        out
    }

    /// Applies one redirection: checks written targets, sets stdin. Returns a stdout target.
    fn redirect(&mut self, st: &mut State, r: &Redir, input: &mut Flow) -> Option<Field> {
        match r.op {
            RedirOp::HereDoc => {
                if let Some(Part::Doc(body)) = r.target.parts.first() {
                    *input = Flow::Text(body.borrow().clone());
                }
                None
            }
            RedirOp::HereString => {
                let f = self.expand_joined(st, &r.target);
                *input = if f.known() && f.taint == Taint::Clean {
                    Flow::Text(f.s)
                } else {
                    Flow::Unknown(f.taint)
                };
                None
            }
            RedirOp::In => {
                let f = self.expand_joined(st, &r.target);
                *input = self.file_flow(st, &f);
                None
            }
            RedirOp::Dup => None,
            RedirOp::Out | RedirOp::Append | RedirOp::ReadWrite => {
                let f = self.expand_joined(st, &r.target);
                super::effects::check_write(self, st, &f, "redirection");
                if r.fd.is_none_or(|fd| fd == 1) {
                    Some(f)
                } else {
                    None
                }
            }
        }
    }

    /// What reading a file gives: its workspace content, its taint, or unknown.
    pub fn file_flow(&mut self, st: &State, f: &Field) -> Flow {
        if f.taint != Taint::Clean {
            return Flow::Unknown(f.taint);
        }
        if let Some(t) = st.tainted_files.get(&file_key(st, &f.s)) {
            return Flow::Unknown(*t);
        }
        if let Some(t) = st.written.get(&file_key(st, &f.s)) {
            return Flow::Text(t.clone());
        }
        match self.workspace_file(st, &f.s) {
            Some(c) => Flow::Text(c.to_string()),
            None => Flow::Unknown(Taint::Clean),
        }
    }

    /// The content of a workspace file named relative to the working directory.
    pub fn workspace_file(&self, st: &State, path: &str) -> Option<&'c str> {
        let abs = resolve_path(&st.cwd, path)?;
        let rel = abs.strip_prefix("/workspace/")?;
        self.ctx
            .files
            .iter()
            .find(|(p, _)| normalise_ws_path(p) == rel)
            .map(|(_, c)| *c)
    }

    /// Expands a word into fields (splitting unquoted expansions on IFS, brace expansion).
    pub fn expand(&mut self, st: &mut State, w: &Word) -> Vec<Field> {
        let mut fields: Vec<Field> = Vec::new();
        let mut cur = Field::default();
        let mut have = false;
        let mut brace_candidate = false;
        let ifs = st
            .vars
            .get("IFS")
            .map(|v| v.text.clone())
            .unwrap_or_else(|| " \t\n".into());
        for p in &w.parts {
            match p {
                Part::Lit { text, quoted } => {
                    if !quoted && text.contains('{') && text.contains('}') {
                        brace_candidate = true;
                    }
                    cur.s.push_str(text);
                    have = true;
                }
                Part::Arith(l) => {
                    if !l.is_empty() {
                        let mut inner = st.clone();
                        self.list(&mut inner, l);
                    }
                    cur.s.push('1');
                    have = true;
                }
                Part::Doc(_) => {}
                Part::Param { name, op, quoted } => {
                    let (v, taint) = self.param(st, name, op);
                    cur.taint = cur.taint.max(taint);
                    if *quoted || name.starts_with('\u{0}') {
                        cur.s.push_str(&v);
                        have = true;
                    } else {
                        split_into(&v, &ifs, &mut cur, &mut fields, &mut have);
                    }
                }
                Part::CmdSub { body, quoted } => {
                    let out = self.substitution(st, body);
                    let (v, taint) = match out {
                        Flow::Text(t) => (t.trim_end_matches('\n').to_string(), Taint::Clean),
                        Flow::Empty => (String::new(), Taint::Clean),
                        Flow::Unknown(t) => (UNKNOWN.to_string(), t),
                    };
                    cur.taint = cur.taint.max(taint);
                    if *quoted {
                        cur.s.push_str(&v);
                        have = true;
                    } else {
                        split_into(&v, &ifs, &mut cur, &mut fields, &mut have);
                    }
                }
                Part::ProcSub { body, input } => {
                    let mut inner = st.clone();
                    let mut out = self.list_flow(&mut inner, body);
                    if is_env_setup(body) {
                        out = Flow::Text(String::new());
                    }
                    let taint = out.taint();
                    cur.s.push_str("/dev/fd/63");
                    have = true;
                    if *input {
                        // Remember what reading this "file" gives.
                        let key = format!("/dev/fd/63#{}", self.steps);
                        cur.s.push_str(&key[10..]);
                        match out {
                            Flow::Text(t) => {
                                PROC_TEXT.with(|m| m.borrow_mut().insert(cur.s.clone(), t));
                            }
                            _ => {
                                st.tainted_files
                                    .insert(cur.s.clone(), taint.max(Taint::Opaque));
                            }
                        }
                        cur.taint = cur.taint.max(Taint::Clean);
                    }
                }
            }
        }
        if have {
            fields.push(cur);
        }
        for f in &mut fields {
            if f.s.len() > MAX_VALUE {
                f.s = UNKNOWN.to_string();
            }
        }
        if fields.len() > 4096 {
            fields.truncate(4096);
        }
        if brace_candidate {
            let mut out = Vec::new();
            for f in fields {
                for s in brace_expand(&f.s, 64) {
                    out.push(Field { s, taint: f.taint });
                }
            }
            return out;
        }
        fields
    }

    /// Expands a word to one string (assignments, redirection targets, here-strings).
    pub fn expand_joined(&mut self, st: &mut State, w: &Word) -> Field {
        let mut q = w.clone();
        for p in &mut q.parts {
            match p {
                Part::Param { quoted, .. } | Part::CmdSub { quoted, .. } => *quoted = true,
                _ => {}
            }
        }
        let fs = self.expand(st, &q);
        let mut out = Field::default();
        for (k, f) in fs.into_iter().enumerate() {
            if k > 0 {
                out.s.push(' ');
            }
            out.s.push_str(&f.s);
            out.taint = out.taint.max(f.taint);
        }
        out
    }

    fn param(&mut self, st: &mut State, name: &str, op: &str) -> (String, Taint) {
        if let Some(body) = name.strip_prefix('#') {
            let _ = body;
            return ("1".into(), Taint::Clean);
        }
        if name.starts_with('!') {
            return (UNKNOWN.to_string(), Taint::Clean);
        }
        let var = st.vars.get(name).cloned();
        let set = var.as_ref().is_some_and(|v| !v.text.is_empty());
        let value = |v: &Option<Var>| {
            v.as_ref()
                .map(|v| (v.text.clone(), v.taint))
                .unwrap_or((UNKNOWN.to_string(), Taint::Clean))
        };
        let word_arg = |s: &str| -> String {
            // The operator's word: strip simple quoting.
            s.chars()
                .filter(|c| !matches!(c, '"' | '\'' | '\\'))
                .collect()
        };
        if op.is_empty() {
            return value(&var);
        }
        for (pre, use_default) in [(":-", true), ("-", true), (":=", true), ("=", true)] {
            if let Some(d) = op.strip_prefix(pre) {
                if pre.starts_with(':') && set || !pre.starts_with(':') && var.is_some() {
                    return value(&var);
                }
                let _ = use_default;
                let d = word_arg(d);
                let d = self.expand_text(st, &d);
                if pre.ends_with('=') {
                    st.vars.insert(
                        name.to_string(),
                        Var {
                            text: d.clone(),
                            taint: Taint::Clean,
                        },
                    );
                }
                return (d, Taint::Clean);
            }
        }
        if op.starts_with(":?") || op.starts_with('?') {
            // Guarded: the shell stops if it is unset, so it is never empty.
            return match var {
                Some(v) => (v.text, v.taint),
                None => (format!("{UNKNOWN}guarded"), Taint::Clean),
            };
        }
        if let Some(alt) = op.strip_prefix(":+").or_else(|| op.strip_prefix('+')) {
            return if set {
                (self.expand_text(st, &word_arg(alt)), Taint::Clean)
            } else {
                (String::new(), Taint::Clean)
            };
        }
        let Some(v) = var else {
            return (UNKNOWN.to_string(), Taint::Clean);
        };
        (transform(&v.text, op), v.taint)
    }

    /// Expands `$VAR` references in operator words (defaults).
    fn expand_text(&mut self, st: &mut State, s: &str) -> String {
        if !s.contains('$') && !s.contains('`') {
            return s.to_string();
        }
        match shell::parse(&format!(": {s}")) {
            Ok(l) => {
                if let Some(Cmd::Simple(sm)) = l.first().and_then(|p| p.cmds.first())
                    && let Some(w) = sm.words.get(1)
                {
                    return self.expand_joined(st, w).s;
                }
                UNKNOWN.to_string()
            }
            Err(_) => UNKNOWN.to_string(),
        }
    }

    /// Analyses a command substitution and returns its output.
    fn substitution(&mut self, st: &mut State, body: &List) -> Flow {
        let mut inner = st.clone();
        if is_env_setup(body) {
            self.list_flow(&mut inner, body);
            return Flow::Text(String::new());
        }
        let out = self.list_flow(&mut inner, body);
        st.tainted_files.extend(inner.tainted_files);
        out
    }

    /// Analyses a list and returns the output of its last pipeline.
    pub fn list_flow(&mut self, st: &mut State, list: &List) -> Flow {
        self.list_flow_in(st, list, Flow::Empty)
    }

    /// Like [`Self::list_flow`], with `stdin` given to the first command (a piped group).
    pub fn list_flow_in(&mut self, st: &mut State, list: &List, stdin: Flow) -> Flow {
        let mut last = Flow::Empty;
        let mut texts = String::new();
        let mut all_text = true;
        let mut stdin = Some(stdin);
        for pl in list {
            let mut input = stdin.take().unwrap_or(Flow::Empty);
            for c in &pl.cmds {
                input = self.cmd(st, c, input, pl.cmds.len() > 1);
            }
            match &input {
                Flow::Text(t) => texts.push_str(t),
                Flow::Empty => {}
                Flow::Unknown(_) => all_text = false,
            }
            last = match (&last, input) {
                (Flow::Unknown(a), Flow::Unknown(b)) => Flow::Unknown((*a).max(b)),
                (Flow::Unknown(a), _) => Flow::Unknown(*a),
                (_, i) => i,
            };
        }
        if all_text && !texts.is_empty() {
            return Flow::Text(texts);
        }
        last
    }

    /// Runs one expanded command: resolves it and checks its effects.
    pub fn run(&mut self, st: &mut State, mut argv: Vec<Field>, input: Flow) -> Flow {
        for _ in 0..32 {
            let Some(first) = argv.first() else {
                return Flow::Empty;
            };
            let name_full = first.s.clone();
            let base = name_full.rsplit('/').next().unwrap_or("").to_string();
            if base.contains(UNKNOWN) || base.is_empty() && name_full.contains(UNKNOWN) {
                match first.taint {
                    Taint::Downloaded => self.hit(
                        "curl-pipe-shell",
                        "a command name taken from downloaded text",
                    ),
                    Taint::Decoded | Taint::Opaque => self.hit(
                        "decode-pipe-shell",
                        "a command name taken from decoded or transformed text",
                    ),
                    // `$PYTHON -m pytest` is ordinary; `$X -rf /`, `$CMD` alone, `$D push -f` are not.
                    Taint::Clean if !suspicious_args(st, &argv[1..]) => {}
                    Taint::Clean => self.hit(
                        "dynamic-command",
                        "the command name is only known at run time, so what runs cannot be checked",
                    ),
                }
                return Flow::Unknown(Taint::Clean);
            }
            if has_glob(&base) {
                self.hit(
                    "dynamic-command",
                    "the command name is a glob pattern, so what runs cannot be checked",
                );
                return Flow::Unknown(Taint::Clean);
            }
            if name_full.contains('/') {
                // A path: an executable file. Follow workspace scripts and tainted files.
                let field = first.clone();
                if let Some(flow) = self.exec_file(st, &field, &argv[1..]) {
                    return flow;
                }
                if name_full.starts_with("./")
                    && (base.ends_with(".sh") || !base.contains('.'))
                    && !argv.iter().any(|a| a.s == "--dry-run" || a.s == "--help")
                    && let Some(rule) = super::pkg::risky_name(&base)
                {
                    self.hit(rule, "a script that is not in the workspace and whose name suggests a deploy or teardown");
                }
            }
            // Aliases.
            if let Some(a) = st.aliases.get(&base).cloned()
                && !self.expanding.contains(&base)
                && !name_full.contains('/')
            {
                self.expanding.push(base.clone());
                let mut words = Vec::new();
                match shell::parse(&a) {
                    Ok(l) if l.len() == 1 && l[0].cmds.len() == 1 => {
                        if let Cmd::Simple(s) = &l[0].cmds[0] {
                            for w in &s.words {
                                words.extend(self.expand(st, w));
                            }
                        }
                    }
                    _ => {
                        let mut inner = st.clone();
                        self.script(&mut inner, &a);
                    }
                }
                self.expanding.pop();
                if words.is_empty() {
                    return Flow::Unknown(Taint::Clean);
                }
                words.extend(argv.drain(1..));
                argv = words;
                continue;
            }
            // Functions.
            if let Some(body) = st.funcs.get(&base).cloned() {
                if self.calling.contains(&base) {
                    self.hit(
                        "fork-bomb",
                        "a function that runs itself (fork bomb / runaway recursion)",
                    );
                    return Flow::Unknown(Taint::Clean);
                }
                self.calling.push(base.clone());
                let mut inner = st.clone();
                let params: Vec<String> = argv[1..].iter().map(|f| f.s.clone()).collect();
                for (k, p) in argv.iter().enumerate().skip(1) {
                    inner.vars.insert(
                        k.to_string(),
                        Var {
                            text: p.s.clone(),
                            taint: p.taint,
                        },
                    );
                }
                for n in ["@", "*"] {
                    inner.vars.insert(
                        n.into(),
                        Var {
                            text: params.join(" "),
                            taint: Taint::Clean,
                        },
                    );
                }
                let out = self.list_flow(&mut inner, &body);
                self.calling.pop();
                return out;
            }
            match super::effects::unwrap(self, st, &base, &argv, &input) {
                super::effects::Next::Run(next) => {
                    argv = next;
                    continue;
                }
                super::effects::Next::Done(flow) => return flow,
                super::effects::Next::Leaf => {
                    return super::effects::leaf(self, st, &base, &argv, input);
                }
            }
        }
        self.hit(
            "too-deep",
            "wrappers nested deeper than the analyser follows",
        );
        Flow::Unknown(Taint::Clean)
    }

    /// Executing a file by path: tainted files and workspace scripts are followed.
    pub fn exec_file(&mut self, st: &mut State, f: &Field, _args: &[Field]) -> Option<Flow> {
        let key = file_key(st, &f.s);
        if let Some(t) = st.tainted_files.get(&key).copied() {
            self.taint_exec(
                t,
                "a file written from downloaded or decoded text is executed",
            );
            return Some(Flow::Unknown(t));
        }
        if let Some(text) = st.written.get(&key).cloned() {
            if self
                .followed
                .insert(format!("written:{key}:{}", text.len()))
            {
                let mut inner = st.clone();
                self.script(&mut inner, &text);
            }
            return Some(Flow::Unknown(Taint::Clean));
        }
        if let Some(text) = PROC_TEXT.with(|m| m.borrow().get(&f.s).cloned()) {
            let mut inner = st.clone();
            self.script(&mut inner, &text);
            return Some(Flow::Unknown(Taint::Clean));
        }
        if let Some(content) = self.workspace_file(st, &f.s) {
            let first = content.lines().next().unwrap_or("");
            let shellish = !first.starts_with("#!")
                || ["sh", "bash", "dash", "zsh", "ksh", "ash"].iter().any(|s| {
                    first.ends_with(&format!("/{s}")) || first.ends_with(&format!(" {s}"))
                });
            if shellish && self.followed.insert(format!("file:{key}")) {
                let mut inner = st.clone();
                self.script(&mut inner, content);
            } else if !shellish {
                super::effects::check_code(self, st, content);
            }
            return Some(Flow::Unknown(Taint::Clean));
        }
        None
    }

    pub fn taint_exec(&mut self, t: Taint, what: &str) {
        match t {
            Taint::Downloaded => self.hit("curl-pipe-shell", format!("{what} (downloaded)")),
            Taint::Decoded | Taint::Opaque => self.hit("decode-pipe-shell", what.to_string()),
            Taint::Clean => {}
        }
    }
}

thread_local! {
    /// Text produced by `<( … )` process substitutions of the current decision.
    pub static PROC_TEXT: std::cell::RefCell<HashMap<String, String>> =
        std::cell::RefCell::new(HashMap::new());
}

fn split_into(v: &str, ifs: &str, cur: &mut Field, fields: &mut Vec<Field>, have: &mut bool) {
    for c in v.chars() {
        if ifs.contains(c) {
            if *have && !cur.s.is_empty() {
                let t = cur.taint;
                fields.push(std::mem::take(cur));
                cur.taint = t;
            }
            *have = false;
        } else {
            cur.s.push(c);
            *have = true;
        }
    }
}

/// `${v/a/b}`, `${v//a/b}`, `${v:o:l}`, `${v^^}`, `${v,,}`, `${v#p}`, `${v%p}` with literal
/// patterns; anything else is unknown.
fn transform(v: &str, op: &str) -> String {
    let lit = |s: &str| !s.contains(['*', '?', '[', '$', '`']);
    if let Some(r) = op.strip_prefix("//").or_else(|| op.strip_prefix('/')) {
        let all = op.starts_with("//");
        let (pat, rep) = r.split_once('/').unwrap_or((r, ""));
        if !lit(pat) || pat.is_empty() {
            return UNKNOWN.to_string();
        }
        return if all {
            v.replace(pat, rep)
        } else {
            v.replacen(pat, rep, 1)
        };
    }
    if op == "^^" {
        return v.to_uppercase();
    }
    if op == ",," {
        return v.to_lowercase();
    }
    if let Some(r) = op.strip_prefix(':')
        && !r.starts_with(['-', '=', '?', '+'])
    {
        let mut it = r.splitn(2, ':');
        let off: i64 = it.next().unwrap_or("0").trim().parse().unwrap_or(i64::MIN);
        if off == i64::MIN || off < 0 {
            return UNKNOWN.to_string();
        }
        let chars: Vec<char> = v.chars().collect();
        let start = (off as usize).min(chars.len());
        let len = match it.next() {
            Some(l) => match l.trim().parse::<usize>() {
                Ok(l) => l,
                Err(_) => return UNKNOWN.to_string(),
            },
            None => chars.len(),
        };
        return chars[start..(start + len).min(chars.len())]
            .iter()
            .collect();
    }
    for (pre, front) in [("##", true), ("#", true), ("%%", false), ("%", false)] {
        if let Some(p) = op.strip_prefix(pre) {
            if !lit(p) {
                return UNKNOWN.to_string();
            }
            return if front {
                v.strip_prefix(p).unwrap_or(v).to_string()
            } else {
                v.strip_suffix(p).unwrap_or(v).to_string()
            };
        }
    }
    UNKNOWN.to_string()
}

/// Bash brace expansion (`{a,b}`, nested), capped at `max` results.
pub fn brace_expand(s: &str, max: usize) -> Vec<String> {
    brace_expand_at(s, max, 0)
}

fn brace_expand_at(s: &str, max: usize, depth: usize) -> Vec<String> {
    if depth > 6 || s.len() > 4096 {
        return vec![s.to_string()];
    }
    let chars: Vec<char> = s.chars().collect();
    // Find the first top-level `{ … }` holding a comma.
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '{' {
            let mut depth = 0;
            let mut commas = Vec::new();
            let mut j = i;
            while j < chars.len() {
                match chars[j] {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => commas.push(j),
                    _ => {}
                }
                j += 1;
            }
            if j < chars.len() && !commas.is_empty() {
                let pre: String = chars[..i].iter().collect();
                let post: String = chars[j + 1..].iter().collect();
                let mut bounds = vec![i];
                bounds.extend(&commas);
                bounds.push(j);
                let mut out = Vec::new();
                for w in bounds.windows(2) {
                    let alt: String = chars[w[0] + 1..w[1]].iter().collect();
                    for e in brace_expand_at(&format!("{pre}{alt}{post}"), max, depth + 1) {
                        if out.len() >= max {
                            return out;
                        }
                        out.push(e);
                    }
                }
                return out;
            }
        }
        i += 1;
    }
    vec![s.to_string()]
}

pub fn has_glob(s: &str) -> bool {
    s.contains('*') || s.contains('?') || (s.len() > 2 && s.contains('[') && s.contains(']'))
}

/// Arguments that would make an unknown command dangerous (or no arguments at all).
fn suspicious_args(st: &State, args: &[Field]) -> bool {
    use super::effects::{Place, place};
    if args.is_empty() {
        return true;
    }
    args.iter().any(|a| {
        let s = a.s.as_str();
        if a.taint != Taint::Clean || !a.known() && s.trim_matches(UNKNOWN).is_empty() {
            return true;
        }
        let flag = s.starts_with('-')
            && (matches!(
                s,
                "-rf"
                    | "-fr"
                    | "-r"
                    | "-R"
                    | "-Rf"
                    | "-rF"
                    | "--recursive"
                    | "--force"
                    | "--prod"
                    | "-c"
                    | "-e"
                    | "--delete"
                    | "--mirror"
                    | "--no-preserve-root"
                    | "--force-with-lease"
            ) || s.starts_with("--target"));
        let word = matches!(
            s.to_ascii_lowercase().as_str(),
            "push"
                | "deploy"
                | "apply"
                | "destroy"
                | "delete"
                | "publish"
                | "up"
                | "drop"
                | "truncate"
                | "eval"
                | "exec"
                | "install"
                | "upgrade"
                | "rollback"
                | "uninstall"
                | "import"
        ) || s.starts_with("of=")
            || s.starts_with('+');
        flag || word
            || !s.starts_with('-')
                && matches!(
                    place(st, s),
                    Place::Root | Place::System | Place::Home | Place::Device
                )
    })
}

/// Variables whose value a program runs as a shell command.
pub fn runs_shell_var(name: &str) -> bool {
    matches!(
        name,
        "GIT_SSH_COMMAND"
            | "GIT_SSH"
            | "GIT_EDITOR"
            | "GIT_PAGER"
            | "GIT_EXTERNAL_DIFF"
            | "GIT_ASKPASS"
            | "SSH_ASKPASS"
            | "PAGER"
            | "EDITOR"
            | "VISUAL"
            | "BASH_ENV"
            | "ENV"
            | "PROMPT_COMMAND"
            | "MANPAGER"
            | "SYSTEMD_PAGER"
            | "GIT_SEQUENCE_EDITOR"
            | "LESSOPEN"
            | "LESSCLOSE"
    )
}

/// Tools whose output is meant to be `eval`ed or `source`d (shell set-up, completions).
const ENV_TOOLS: &[&str] = &[
    "ssh-agent",
    "gpg-agent",
    "keychain",
    "pyenv",
    "rbenv",
    "nodenv",
    "goenv",
    "jenv",
    "direnv",
    "minikube",
    "conda",
    "brew",
    "fnm",
    "starship",
    "zoxide",
    "opam",
    "luarocks",
    "docker-machine",
    "dircolors",
    "mise",
    "rtx",
    "asdf",
    "thefuck",
    "register-python-argcomplete",
    "kind",
    "nvm",
    "volta",
    "pdm",
    "poetry",
    "pipenv",
    "rustup",
    "op",
    "aws-vault",
    "gh",
    "kubectl",
    "helm",
    "npm",
    "pnpm",
    "just",
    "atuin",
    "mcfly",
    "sccache",
    "vcpkg",
    "devbox",
    "nix",
    "envsubst",
];

/// Whether a substitution only prints shell set-up (`eval "$(ssh-agent -s)"`,
/// `source <(kubectl completion bash)`).
fn is_env_setup(body: &List) -> bool {
    let [pl] = body.as_slice() else { return false };
    let [Cmd::Simple(s)] = pl.cmds.as_slice() else {
        return false;
    };
    let words: Vec<String> = s.words.iter().filter_map(Word::literal).collect();
    if words.len() != s.words.len() || words.is_empty() {
        return false;
    }
    let name = words[0].rsplit('/').next().unwrap_or("");
    let tool = ENV_TOOLS.contains(&name);
    let setup_word = words[1..].iter().any(|w| {
        matches!(
            w.as_str(),
            "completion"
                | "completions"
                | "init"
                | "-"
                | "env"
                | "shellenv"
                | "hook"
                | "activate"
                | "-s"
                | "-c"
                | "shell.bash"
                | "shell.zsh"
                | "docker-env"
                | "--sh"
                | "bash"
                | "zsh"
        ) || w.starts_with("init")
    });
    tool && (setup_word || words.len() == 1) || (words.len() > 1 && words[1] == "completion")
}

fn calls_itself(name: &str, body: &List) -> bool {
    body.iter().any(|pl| {
        pl.cmds.iter().any(|c| match c {
            Cmd::Simple(s) => s
                .words
                .first()
                .and_then(Word::literal)
                .is_some_and(|w| w == name),
            Cmd::Group(l) | Cmd::Subshell(l) => calls_itself(name, l),
            _ => false,
        })
    })
}

/// The workspace-relative form of a workspace file path (`./a`, `/workspace/a` → `a`).
pub fn normalise_ws_path(p: &str) -> String {
    let p = p.strip_prefix("/workspace/").unwrap_or(p);
    let mut out: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    out.join("/")
}

/// Resolves a path against the working directory: an absolute normalised path (home as
/// `~`), or None when it depends on an unknown working directory.
pub fn resolve_path(cwd: &Cwd, p: &str) -> Option<String> {
    let tilde_user;
    let p = if p.starts_with('~') && !p.starts_with("~/") && p != "~" {
        // `~user/…`: another user's home.
        tilde_user = match p.split_once('/') {
            Some((_, rest)) => format!("~/{rest}"),
            None => "~".to_string(),
        };
        tilde_user.as_str()
    } else {
        p
    };
    let joined = if p.starts_with('/') || p == "~" || p.starts_with("~/") {
        p.to_string()
    } else {
        match cwd {
            Cwd::At(c) => format!("{c}/{p}"),
            Cwd::Unknown => return None,
        }
    };
    let (root, rest) = if let Some(r) = joined.strip_prefix('~') {
        ("~", r)
    } else {
        ("", joined.as_str())
    };
    let mut segs: Vec<&str> = Vec::new();
    for seg in rest.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if segs.pop().is_none() && root == "~" {
                    // Above home: treat as the filesystem's /home.
                    return Some("/home".into());
                }
            }
            s => segs.push(s),
        }
    }
    let body = segs.join("/");
    Some(if root == "~" {
        if body.is_empty() {
            "~".into()
        } else {
            format!("~/{body}")
        }
    } else {
        format!("/{body}")
    })
}

/// The key under which a file is remembered (absolute when possible).
pub fn file_key(st: &State, p: &str) -> String {
    resolve_path(&st.cwd, p).unwrap_or_else(|| p.to_string())
}
