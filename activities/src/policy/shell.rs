//! A POSIX/bash command-line parser: lists, pipelines, subshells, groups, compound commands
//! (flattened), functions, words with quoting, parameter, command, arithmetic and process
//! substitution, redirections, here-docs and here-strings.
//!
//! It never expands anything itself (the analyser does, with what it knows) and it refuses
//! what it cannot read completely: unterminated quoting, unbalanced parentheses, nesting
//! deeper than [`MAX_DEPTH`]. Every loop consumes input, so time is linear in the input
//! (times the nesting depth for backticks, which are re-read once per level).

/// Deeper nesting of subshells, substitutions and groups is refused, not skipped.
pub const MAX_DEPTH: usize = 24;

/// Why a command could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Quoting, a substitution or a group was never closed, or a stray closer appeared.
    Syntax(String),
    /// Nesting passed [`MAX_DEPTH`].
    TooDeep,
}

/// A list of pipelines, run in order (`;`, `&&`, `||`, `&` and newlines are all sequencing
/// for the analysis: any of them may run).
pub type List = Vec<Pipeline>;

#[derive(Debug, Clone, Default)]
pub struct Pipeline {
    pub cmds: Vec<Cmd>,
}

#[derive(Debug, Clone)]
pub enum Cmd {
    Simple(Simple),
    /// `( … )`: runs in a subshell (its `cd` does not leak out).
    Subshell(List),
    /// `{ …; }`, `if`, `while`, `case` bodies, … flattened into one list.
    Group(List),
    /// `name() body` or `function name body`.
    Func(String, List),
    /// `for NAME in WORDS`: binds NAME to the words for the body that follows.
    For(String, Vec<Word>),
}

#[derive(Debug, Clone, Default)]
pub struct Simple {
    pub assigns: Vec<(String, Word)>,
    pub words: Vec<Word>,
    pub redirs: Vec<Redir>,
}

#[derive(Debug, Clone)]
pub struct Redir {
    /// The file descriptor written, when stated (`2>`).
    pub fd: Option<u32>,
    pub op: RedirOp,
    pub target: Word,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirOp {
    In,
    Out,
    Append,
    /// `<>`
    ReadWrite,
    /// `>&` / `<&` duplication (target is a descriptor or `-`).
    Dup,
    /// `<<` / `<<-`; the target holds the body, already read.
    HereDoc,
    /// `<<<`
    HereString,
}

#[derive(Debug, Clone, Default)]
pub struct Word {
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone)]
pub enum Part {
    /// Literal text. `quoted` texts are not split, globbed or tilde-expanded.
    Lit { text: String, quoted: bool },
    /// `$name`, `${name…}`: the name and the operator text after it (`:-default`, `/a/b`…).
    Param {
        name: String,
        op: String,
        quoted: bool,
    },
    /// `$( … )` or `` `…` ``.
    CmdSub { body: List, quoted: bool },
    /// `<( … )` or `>( … )`.
    ProcSub { body: List, input: bool },
    /// `$(( … ))`, with the command substitutions inside it.
    Arith(List),
    /// A here-doc body, filled when the parser reaches the end of its line.
    Doc(std::rc::Rc<std::cell::RefCell<String>>),
}

impl Word {
    /// The word's text when it is fully literal (no expansion of any kind).
    pub fn literal(&self) -> Option<String> {
        let mut s = String::new();
        for p in &self.parts {
            match p {
                Part::Lit { text, .. } => s.push_str(text),
                _ => return None,
            }
        }
        Some(s)
    }
    fn push_lit(&mut self, c: char, quoted: bool) {
        if let Some(Part::Lit { text, quoted: q }) = self.parts.last_mut()
            && *q == quoted
        {
            text.push(c);
            return;
        }
        self.parts.push(Part::Lit {
            text: c.to_string(),
            quoted,
        });
    }
    fn push_str(&mut self, s: &str, quoted: bool) {
        for c in s.chars() {
            self.push_lit(c, quoted);
        }
    }
    fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }
}

/// Parses a whole command line.
pub fn parse(src: &str) -> Result<List, ParseError> {
    let mut p = Parser {
        s: src.chars().collect(),
        i: 0,
        depth: 0,
        pending: Vec::new(),
    };
    let list = p.list(Stop::Eof)?;
    p.skip_blank_lines();
    if p.i < p.s.len() {
        return Err(ParseError::Syntax(format!(
            "unexpected '{}'",
            p.s[p.i..].iter().take(8).collect::<String>()
        )));
    }
    if !p.pending.is_empty() {
        // A here-doc whose body never started: bash reads to end of input; so do we.
        p.read_heredocs();
    }
    let _ = &p;
    Ok(list)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    Eof,
    Paren,
    Brace,
    Case,
}

struct PendingDoc {
    delim: String,
    strip_tabs: bool,
    /// Where to put the body once read: a shared slot filled in place.
    slot: std::rc::Rc<std::cell::RefCell<String>>,
}

struct Parser {
    s: Vec<char>,
    i: usize,
    depth: usize,
    pending: Vec<PendingDoc>,
}

const RESERVED_SKIP: &[&str] = &[
    "then", "else", "elif", "do", "if", "while", "until", "!", "fi", "done",
];

fn is_meta(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\n' | ';' | '&' | '|' | '<' | '>' | '(' | ')'
    )
}

fn is_name_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_name(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next().is_some_and(is_name_start) && cs.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }
    fn peek_at(&self, k: usize) -> Option<char> {
        self.s.get(self.i + k).copied()
    }
    fn starts(&self, t: &str) -> bool {
        t.chars()
            .enumerate()
            .all(|(k, c)| self.peek_at(k) == Some(c))
    }
    fn err<T>(&self, m: &str) -> Result<T, ParseError> {
        Err(ParseError::Syntax(m.to_string()))
    }
    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError::TooDeep);
        }
        Ok(())
    }

    fn skip_ws(&mut self) {
        loop {
            match self.peek() {
                Some(' ' | '\t' | '\r') => self.i += 1,
                Some('\\') if self.peek_at(1) == Some('\n') => self.i += 2,
                Some('#') => {
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.i += 1;
                    }
                }
                _ => return,
            }
        }
    }

    /// Skips blanks and newlines (reading due here-docs at each newline).
    fn skip_blank_lines(&mut self) {
        loop {
            self.skip_ws();
            if self.peek() == Some('\n') {
                self.i += 1;
                self.read_heredocs();
            } else {
                return;
            }
        }
    }

    fn read_heredocs(&mut self) {
        let docs = std::mem::take(&mut self.pending);
        for d in docs {
            let mut body = String::new();
            loop {
                if self.i >= self.s.len() {
                    break;
                }
                let start = self.i;
                while self.peek().is_some_and(|c| c != '\n') {
                    self.i += 1;
                }
                let line: String = self.s[start..self.i].iter().collect();
                if self.peek() == Some('\n') {
                    self.i += 1;
                }
                let cmp = if d.strip_tabs {
                    line.trim_start_matches('\t')
                } else {
                    line.as_str()
                };
                if cmp == d.delim {
                    break;
                }
                body.push_str(cmp);
                body.push('\n');
            }
            *d.slot.borrow_mut() = body;
        }
    }

    fn list(&mut self, stop: Stop) -> Result<List, ParseError> {
        let mut out = Vec::new();
        loop {
            self.skip_blank_lines();
            match self.peek() {
                None => {
                    if stop != Stop::Eof {
                        return self.err("unexpected end of input: an opening is never closed");
                    }
                    return Ok(out);
                }
                Some(')') => {
                    if stop == Stop::Paren {
                        return Ok(out);
                    }
                    if stop == Stop::Case {
                        return Ok(out);
                    }
                    return self.err("unbalanced ')'");
                }
                Some(';') if self.peek_at(1) == Some(';') => {
                    if stop == Stop::Case {
                        return Ok(out);
                    }
                    return self.err("';;' outside case");
                }
                Some(';' | '&') => {
                    // Empty command (e.g. after a reserved word we skipped).
                    self.i += 1;
                    continue;
                }
                _ => {}
            }
            // Stop words at command position.
            if let Some(w) = self.peek_plain_word() {
                match w.as_str() {
                    "}" if stop == Stop::Brace => {
                        self.i += 1;
                        return Ok(out);
                    }
                    "esac" if stop == Stop::Case => return Ok(out),
                    "}" | "esac" => return self.err("unbalanced closing word"),
                    _ => {}
                }
            }
            let pl = self.pipeline(stop)?;
            if !pl.cmds.is_empty() {
                out.push(pl);
            }
            self.skip_ws();
            match self.peek() {
                Some(';') if self.peek_at(1) == Some(';') => continue,
                Some(';') => self.i += 1,
                Some('&') if self.peek_at(1) == Some('&') => self.i += 2,
                Some('|') if self.peek_at(1) == Some('|') => self.i += 2,
                Some('&') => self.i += 1,
                Some('\n') | None | Some(')') => {}
                Some(_) => {
                    if let Some(w) = self.peek_plain_word()
                        && (w == "}" || w == "esac")
                    {
                        continue;
                    }
                    return self.err("unexpected token after a command");
                }
            }
        }
    }

    /// A bare word at the cursor without quoting or expansion (for reserved words).
    fn peek_plain_word(&self) -> Option<String> {
        let mut k = self.i;
        let mut w = String::new();
        while let Some(&c) = self.s.get(k) {
            if is_meta(c) || matches!(c, '\'' | '"' | '\\' | '$' | '`') {
                break;
            }
            w.push(c);
            k += 1;
        }
        if w.is_empty() { None } else { Some(w) }
    }

    fn take_plain_word(&mut self, w: &str) {
        self.i += w.chars().count();
    }

    fn pipeline(&mut self, stop: Stop) -> Result<Pipeline, ParseError> {
        let mut pl = Pipeline::default();
        loop {
            self.skip_ws();
            if let Some(c) = self.command(stop)? {
                pl.cmds.push(c);
            }
            self.skip_ws();
            if self.peek() == Some('|') && self.peek_at(1) != Some('|') {
                self.i += 1;
                if self.peek() == Some('&') {
                    self.i += 1;
                }
                self.skip_blank_lines();
                continue;
            }
            return Ok(pl);
        }
    }

    fn command(&mut self, stop: Stop) -> Result<Option<Cmd>, ParseError> {
        loop {
            self.skip_ws();
            if self.starts("((") && self.arith_ahead()? {
                // Arithmetic command: only its command substitutions run anything.
                let subs = self.arith_subs()?;
                return Ok(Some(Cmd::Group(subs)));
            }
            if self.peek() == Some('(') {
                self.i += 1;
                self.enter()?;
                let body = self.list(Stop::Paren)?;
                if self.peek() != Some(')') {
                    return self.err("unterminated subshell");
                }
                self.i += 1;
                self.depth -= 1;
                let mut redirs = Vec::new();
                self.trailing_redirs(&mut redirs)?;
                return Ok(Some(wrap_redirs(Cmd::Subshell(body), redirs)));
            }
            let Some(w) = self.peek_plain_word() else {
                break;
            };
            let after = self.s.get(self.i + w.chars().count()).copied();
            let word_ends = after.is_none_or(is_meta);
            if !word_ends {
                break;
            }
            match w.as_str() {
                "{" => {
                    self.take_plain_word(&w);
                    self.enter()?;
                    let body = self.list(Stop::Brace)?;
                    self.depth -= 1;
                    let mut redirs = Vec::new();
                    self.trailing_redirs(&mut redirs)?;
                    return Ok(Some(wrap_redirs(Cmd::Group(body), redirs)));
                }
                "}" | "esac" => {
                    let _ = stop;
                    return Ok(None);
                }
                w2 if RESERVED_SKIP.contains(&w2) => {
                    self.take_plain_word(&w);
                    continue;
                }
                "for" | "select" => {
                    self.take_plain_word(&w);
                    return self.for_clause().map(Some);
                }
                "case" => {
                    self.take_plain_word(&w);
                    return self.case_clause().map(Some);
                }
                "function" => {
                    self.take_plain_word(&w);
                    self.skip_ws();
                    let name = self.peek_plain_word().unwrap_or_default();
                    self.take_plain_word(&name);
                    self.skip_ws();
                    if self.starts("()") {
                        self.i += 2;
                    }
                    return self.func_body(name).map(Some);
                }
                _ => {}
            }
            // `name()` function definition.
            let n = w.chars().count();
            let mut k = self.i + n;
            while matches!(self.s.get(k), Some(' ' | '\t')) {
                k += 1;
            }
            if self.s.get(k) == Some(&'(') {
                let mut k2 = k + 1;
                while matches!(self.s.get(k2), Some(' ' | '\t')) {
                    k2 += 1;
                }
                if self.s.get(k2) == Some(&')') {
                    self.i = k2 + 1;
                    return self.func_body(w).map(Some);
                }
            }
            break;
        }
        self.simple().map(|s| s.map(Cmd::Simple))
    }

    fn func_body(&mut self, name: String) -> Result<Cmd, ParseError> {
        self.skip_blank_lines();
        self.enter()?;
        let body = match self.command(Stop::Eof)? {
            Some(Cmd::Group(l)) | Some(Cmd::Subshell(l)) => l,
            Some(c) => vec![Pipeline { cmds: vec![c] }],
            None => Vec::new(),
        };
        self.depth -= 1;
        Ok(Cmd::Func(name, body))
    }

    fn for_clause(&mut self) -> Result<Cmd, ParseError> {
        self.skip_ws();
        if self.starts("((") {
            self.skip_balanced_parens()?;
            return Ok(Cmd::Group(Vec::new()));
        }
        let name = self.peek_plain_word().unwrap_or_default();
        self.take_plain_word(&name);
        self.skip_ws();
        let mut words = Vec::new();
        if self.peek_plain_word().as_deref() == Some("in") {
            self.i += 2;
            loop {
                self.skip_ws();
                match self.peek() {
                    None | Some(';' | '\n' | '&' | '|' | ')') => break,
                    _ => {}
                }
                let w = self.word()?;
                if w.is_empty() {
                    break;
                }
                words.push(w);
            }
        } else {
            words.push(Word {
                parts: vec![Part::Param {
                    name: "@".into(),
                    op: String::new(),
                    quoted: true,
                }],
            });
        }
        Ok(Cmd::For(name, words))
    }

    fn case_clause(&mut self) -> Result<Cmd, ParseError> {
        self.skip_ws();
        let subject = self.word()?;
        self.skip_blank_lines();
        if self.peek_plain_word().as_deref() == Some("in") {
            self.i += 2;
        } else {
            return self.err("case without 'in'");
        }
        let mut body = vec![Pipeline {
            cmds: vec![Cmd::Simple(Simple {
                assigns: Vec::new(),
                words: vec![
                    Word {
                        parts: vec![Part::Lit {
                            text: ":".into(),
                            quoted: false,
                        }],
                    },
                    subject,
                ],
                redirs: Vec::new(),
            })],
        }];
        self.enter()?;
        loop {
            self.skip_blank_lines();
            if self.peek_plain_word().as_deref() == Some("esac") {
                self.i += 4;
                break;
            }
            if self.peek().is_none() {
                return self.err("unterminated case");
            }
            if self.peek() == Some('(') {
                self.i += 1;
            }
            // The pattern, up to `)`.
            loop {
                self.skip_ws();
                match self.peek() {
                    None => return self.err("unterminated case pattern"),
                    Some(')') => {
                        self.i += 1;
                        break;
                    }
                    Some('|') => self.i += 1,
                    _ => {
                        let w = self.word()?;
                        if w.is_empty() {
                            return self.err("bad case pattern");
                        }
                    }
                }
            }
            let l = self.list(Stop::Case)?;
            body.extend(l);
            self.skip_ws();
            if self.starts(";;&") {
                self.i += 3;
            } else if self.starts(";;") || self.starts(";&") {
                self.i += 2;
            } else if self.peek_plain_word().as_deref() == Some("esac") {
                continue;
            } else {
                return self.err("bad case item");
            }
        }
        self.depth -= 1;
        Ok(Cmd::Group(body))
    }

    fn trailing_redirs(&mut self, redirs: &mut Vec<Redir>) -> Result<(), ParseError> {
        loop {
            self.skip_ws();
            if !self.redir_here(redirs)? {
                return Ok(());
            }
        }
    }

    /// Parses a redirection at the cursor if there is one.
    fn redir_here(&mut self, redirs: &mut Vec<Redir>) -> Result<bool, ParseError> {
        let save = self.i;
        let mut fd = None;
        let mut k = self.i;
        let mut num = String::new();
        while let Some(c) = self.s.get(k).filter(|c| c.is_ascii_digit()) {
            num.push(*c);
            k += 1;
        }
        if !num.is_empty() && matches!(self.s.get(k), Some('<' | '>')) {
            fd = num.parse().ok();
            self.i = k;
        } else if self.starts("&>") {
            // `&>file` and `&>>file`: both stdout and stderr.
            self.i += 1;
            fd = Some(1);
        }
        let op = if self.starts("<<<") {
            self.i += 3;
            RedirOp::HereString
        } else if self.starts("<<") {
            self.i += 2;
            let strip = if self.peek() == Some('-') {
                self.i += 1;
                true
            } else {
                false
            };
            self.skip_ws();
            let dw = self.word()?;
            let delim: String = dw
                .parts
                .iter()
                .map(|p| match p {
                    Part::Lit { text, .. } => text.clone(),
                    Part::Param { name, .. } => format!("${name}"),
                    _ => String::new(),
                })
                .collect();
            if delim.is_empty() {
                return self.err("here-doc without a delimiter");
            }
            let slot = std::rc::Rc::new(std::cell::RefCell::new(String::new()));
            self.pending.push(PendingDoc {
                delim,
                strip_tabs: strip,
                slot: slot.clone(),
            });
            redirs.push(Redir {
                fd,
                op: RedirOp::HereDoc,
                target: Word {
                    parts: vec![Part::Doc(slot)],
                },
            });
            return Ok(true);
        } else if self.starts("<>") {
            self.i += 2;
            RedirOp::ReadWrite
        } else if self.starts("<&") || self.starts(">&") {
            self.i += 2;
            if self.s[self.i - 2] == '>' {
                // `>&file` (not a digit or '-') is `&>file`.
                self.skip_ws();
                if self.peek().is_some_and(|c| !c.is_ascii_digit() && c != '-') {
                    RedirOp::Out
                } else {
                    RedirOp::Dup
                }
            } else {
                RedirOp::Dup
            }
        } else if self.starts(">>") {
            self.i += 2;
            RedirOp::Append
        } else if self.starts(">|") {
            self.i += 2;
            RedirOp::Out
        } else if self.starts(">") && !self.starts(">(") {
            self.i += 1;
            RedirOp::Out
        } else if self.starts("<") && !self.starts("<(") {
            self.i += 1;
            RedirOp::In
        } else {
            self.i = save;
            return Ok(false);
        };
        self.skip_ws();
        let target = self.word()?;
        if target.is_empty() {
            return self.err("redirection without a target");
        }
        redirs.push(Redir { fd, op, target });
        Ok(true)
    }

    fn simple(&mut self) -> Result<Option<Simple>, ParseError> {
        let mut s = Simple::default();
        loop {
            self.skip_ws();
            if self.starts("&>") {
                self.redir_here(&mut s.redirs)?;
                continue;
            }
            if matches!(self.peek(), None | Some(';' | '&' | '|' | '\n' | ')')) {
                break;
            }
            if self.redir_here(&mut s.redirs)? {
                continue;
            }
            if self.peek() == Some('(') && !s.words.is_empty() {
                return self.err("unexpected '('");
            }
            let start = self.i;
            let w = self.word()?;
            if w.is_empty() {
                if self.i == start {
                    return self.err("unexpected character");
                }
                continue;
            }
            // `NAME=value` before the command word is an assignment.
            if s.words.is_empty()
                && let Some(Part::Lit {
                    text,
                    quoted: false,
                }) = w.parts.first()
                && let Some(eq) = text.find('=')
                && is_name(text[..eq].trim_end_matches('+'))
            {
                let name = text[..eq].trim_end_matches('+').to_string();
                let mut rest = w.clone();
                if let Some(Part::Lit { text, .. }) = rest.parts.first_mut() {
                    *text = text[eq + 1..].to_string();
                }
                if rest
                    .parts
                    .first()
                    .is_some_and(|p| matches!(p, Part::Lit { text, .. } if text.is_empty()))
                    && rest.parts.len() > 1
                {
                    rest.parts.remove(0);
                }
                // `a=(x y)` arrays: read the parenthesised words as the value.
                if self.peek() == Some('(') && rest.literal().as_deref() == Some("") {
                    self.skip_balanced_parens()?;
                }
                s.assigns.push((name, rest));
                continue;
            }
            s.words.push(w);
        }
        if s.words.is_empty() && s.assigns.is_empty() && s.redirs.is_empty() {
            return Ok(None);
        }
        Ok(Some(s))
    }

    /// Whether the `((` at the cursor opens arithmetic (`(( i++ ))`) rather than nested
    /// subshells (`((cmd))`, which POSIX shells such as dash run as commands). Text that is not
    /// plain arithmetic, or that holds command substitutions, is read as commands.
    fn arith_ahead(&mut self) -> Result<bool, ParseError> {
        let save = self.i;
        self.skip_balanced_parens()?;
        let end = self.i;
        self.i = save;
        if end < save + 4 {
            return Ok(true);
        }
        let content: String = self.s[save + 2..end - 2].iter().collect();
        if content.contains(['\'', '"', ';', '\n', '{', '}']) {
            return Ok(false);
        }
        // Two operands in a row (`vercel --prod`, `rm -rf /`) are not arithmetic.
        let mut prev_operand = false;
        let mut gap = false;
        let cs: Vec<char> = content.chars().collect();
        let mut k = 0;
        while k < cs.len() {
            let c = cs[k];
            if (c == '$' && cs.get(k + 1) == Some(&'(')) || c == '`' {
                // A substitution is one operand.
                if prev_operand && gap {
                    return Ok(false);
                }
                let close = if c == '`' { '`' } else { ')' };
                let mut depth = 0i32;
                k += 1;
                while k < cs.len() {
                    match cs[k] {
                        '(' if close == ')' => depth += 1,
                        ')' if close == ')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        '`' if close == '`' => break,
                        _ => {}
                    }
                    k += 1;
                }
                k += 1;
                prev_operand = true;
                gap = false;
                continue;
            }
            if c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '.' {
                if prev_operand && gap {
                    return Ok(false);
                }
                while k < cs.len()
                    && (cs[k].is_ascii_alphanumeric()
                        || cs[k] == '_'
                        || cs[k] == '$'
                        || cs[k] == '.'
                        || cs[k] == '#'
                        || cs[k] == '['
                        || cs[k] == ']')
                {
                    k += 1;
                }
                prev_operand = true;
                gap = false;
                continue;
            }
            if c == ' ' || c == '\t' {
                gap = true;
            } else if c == '-' && cs.get(k + 1) == Some(&'-') && prev_operand && gap {
                // `a --b` is `a - -b` only when followed by an operand, still two operands.
                return Ok(false);
            } else if c == '/' && prev_operand && gap && cs.get(k + 1).is_none_or(|n| *n == ' ') {
                prev_operand = false;
            } else {
                prev_operand = false;
                gap = false;
            }
            k += 1;
        }
        Ok(true)
    }

    /// Skips an arithmetic `(( … ))` region and returns its command substitutions, parsed.
    fn arith_subs(&mut self) -> Result<List, ParseError> {
        let start = self.i;
        self.skip_balanced_parens()?;
        let content: Vec<char> =
            self.s[start + 2..self.i.saturating_sub(2).max(start + 2)].to_vec();
        if !content.iter().any(|c| *c == '$' || *c == '`') {
            return Ok(Vec::new());
        }
        let mut sub = Parser {
            s: content,
            i: 0,
            depth: self.depth,
            pending: Vec::new(),
        };
        let mut w = Word::default();
        while let Some(c) = sub.peek() {
            if c == '`' {
                sub.backtick(&mut w, true)?;
            } else if c == '$' && sub.peek_at(1) == Some('(') {
                sub.dollar(&mut w, true)?;
            } else {
                sub.i += 1;
            }
        }
        if w.parts.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![Pipeline {
            cmds: vec![Cmd::Simple(Simple {
                assigns: Vec::new(),
                words: vec![
                    Word {
                        parts: vec![Part::Lit {
                            text: ":".into(),
                            quoted: false,
                        }],
                    },
                    w,
                ],
                redirs: Vec::new(),
            })],
        }])
    }

    /// Skips a balanced `( … )` region (arithmetic), honouring quotes.
    fn skip_balanced_parens(&mut self) -> Result<(), ParseError> {
        let mut depth = 0usize;
        while let Some(c) = self.peek() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        self.i += 1;
                        return Ok(());
                    }
                }
                '\'' => {
                    self.i += 1;
                    while self.peek().is_some_and(|c| c != '\'') {
                        self.i += 1;
                    }
                    if self.peek().is_none() {
                        return self.err("unterminated quote");
                    }
                }
                '\\' => self.i += 1,
                _ => {}
            }
            self.i += 1;
        }
        self.err("unterminated parenthesis")
    }

    /// One word (possibly empty when the cursor is on a metacharacter).
    fn word(&mut self) -> Result<Word, ParseError> {
        let mut w = Word::default();
        let at_start = self.i;
        while let Some(c) = self.peek() {
            match c {
                c if is_meta(c) => {
                    if (c == '<' || c == '>') && self.peek_at(1) == Some('(') {
                        let input = c == '<';
                        self.i += 2;
                        self.enter()?;
                        let body = self.list(Stop::Paren)?;
                        if self.peek() != Some(')') {
                            return self.err("unterminated process substitution");
                        }
                        self.i += 1;
                        self.depth -= 1;
                        w.parts.push(Part::ProcSub { body, input });
                        continue;
                    }
                    // `@(…)`, `!(…)` extglobs and `[[ a < b ]]` are rare; stop here.
                    break;
                }
                '\\' => {
                    self.i += 1;
                    match self.peek() {
                        Some('\n') => self.i += 1,
                        Some(c) => {
                            self.i += 1;
                            w.push_lit(c, true);
                        }
                        None => {}
                    }
                }
                '\'' => {
                    self.i += 1;
                    let start = self.i;
                    while self.peek().is_some_and(|c| c != '\'') {
                        self.i += 1;
                    }
                    if self.peek().is_none() {
                        return self.err("unterminated single quote");
                    }
                    let t: String = self.s[start..self.i].iter().collect();
                    self.i += 1;
                    w.push_str(&t, true);
                    if t.is_empty() {
                        w.parts.push(Part::Lit {
                            text: String::new(),
                            quoted: true,
                        });
                    }
                }
                '"' => {
                    self.i += 1;
                    let before = w.parts.len();
                    self.double_quoted(&mut w)?;
                    if w.parts.len() == before {
                        w.parts.push(Part::Lit {
                            text: String::new(),
                            quoted: true,
                        });
                    }
                }
                '$' => self.dollar(&mut w, false)?,
                '`' => self.backtick(&mut w, false)?,
                '~' if self.i == at_start => {
                    self.i += 1;
                    w.push_lit('~', false);
                }
                _ => {
                    self.i += 1;
                    w.push_lit(c, false);
                }
            }
        }
        Ok(w)
    }

    fn double_quoted(&mut self, w: &mut Word) -> Result<(), ParseError> {
        loop {
            match self.peek() {
                None => return self.err("unterminated double quote"),
                Some('"') => {
                    self.i += 1;
                    return Ok(());
                }
                Some('\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some('\n') => self.i += 1,
                        Some(c @ ('$' | '`' | '"' | '\\')) => {
                            self.i += 1;
                            w.push_lit(c, true);
                        }
                        Some(c) => {
                            self.i += 1;
                            w.push_lit('\\', true);
                            w.push_lit(c, true);
                        }
                        None => return self.err("unterminated double quote"),
                    }
                }
                Some('$') => self.dollar(w, true)?,
                Some('`') => self.backtick(w, true)?,
                Some(c) => {
                    self.i += 1;
                    w.push_lit(c, true);
                }
            }
        }
    }

    fn dollar(&mut self, w: &mut Word, quoted: bool) -> Result<(), ParseError> {
        self.i += 1;
        match self.peek() {
            Some('\'') if !quoted => {
                self.i += 1;
                let mut t = String::new();
                loop {
                    match self.peek() {
                        None => return self.err("unterminated $'…'"),
                        Some('\'') => {
                            self.i += 1;
                            break;
                        }
                        Some('\\') => {
                            self.i += 1;
                            let c = self.peek().unwrap_or('\\');
                            self.i += 1;
                            match c {
                                'n' => t.push('\n'),
                                't' => t.push('\t'),
                                'r' => t.push('\r'),
                                'a' => t.push('\x07'),
                                'b' => t.push('\x08'),
                                'e' | 'E' => t.push('\x1b'),
                                'v' => t.push('\x0b'),
                                'f' => t.push('\x0c'),
                                'x' => {
                                    let v = self.radix_digits(16, 2);
                                    t.push(char::from_u32(v).unwrap_or('?'));
                                }
                                'u' => {
                                    let v = self.radix_digits(16, 4);
                                    t.push(char::from_u32(v).unwrap_or('?'));
                                }
                                'U' => {
                                    let v = self.radix_digits(16, 8);
                                    t.push(char::from_u32(v).unwrap_or('?'));
                                }
                                '0'..='7' => {
                                    self.i -= 1;
                                    let v = self.radix_digits(8, 3);
                                    t.push(char::from_u32(v).unwrap_or('?'));
                                }
                                'c' => {
                                    let c = self.peek().unwrap_or('?');
                                    self.i += 1;
                                    t.push(char::from_u32((c as u32) & 0x1f).unwrap_or('?'));
                                }
                                other => t.push(other),
                            }
                        }
                        Some(c) => {
                            self.i += 1;
                            t.push(c);
                        }
                    }
                }
                w.push_str(&t, true);
                if t.is_empty() {
                    w.parts.push(Part::Lit {
                        text: String::new(),
                        quoted: true,
                    });
                }
            }
            Some('"') if !quoted => {
                // $"…" (locale translation) is a double-quoted string.
                self.i += 1;
                self.double_quoted(w)?;
            }
            Some('(') => {
                if self.peek_at(1) == Some('(') && self.arith_ahead()? {
                    let subs = self.arith_subs()?;
                    w.parts.push(Part::Arith(subs));
                    return Ok(());
                }
                self.i += 1;
                self.enter()?;
                let body = self.list(Stop::Paren)?;
                if self.peek() != Some(')') {
                    return self.err("unterminated $(…)");
                }
                self.i += 1;
                self.depth -= 1;
                w.parts.push(Part::CmdSub { body, quoted });
            }
            Some('[') => {
                // Old arithmetic $[ … ].
                while self.peek().is_some_and(|c| c != ']') {
                    self.i += 1;
                }
                if self.peek().is_none() {
                    return self.err("unterminated $[");
                }
                self.i += 1;
                w.parts.push(Part::Arith(Vec::new()));
            }
            Some('{') => {
                self.i += 1;
                let start = self.i;
                let mut depth = 1usize;
                while let Some(c) = self.peek() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        '\\' => self.i += 1,
                        _ => {}
                    }
                    self.i += 1;
                }
                if self.peek().is_none() {
                    return self.err("unterminated ${…}");
                }
                let inner: String = self.s[start..self.i.min(self.s.len())].iter().collect();
                self.i += 1;
                let (name, op) = split_param(&inner);
                w.parts.push(Part::Param { name, op, quoted });
            }
            Some(c) if is_name_start(c) => {
                let start = self.i;
                while self
                    .peek()
                    .is_some_and(|c| c == '_' || c.is_ascii_alphanumeric())
                {
                    self.i += 1;
                }
                let name: String = self.s[start..self.i].iter().collect();
                w.parts.push(Part::Param {
                    name,
                    op: String::new(),
                    quoted,
                });
            }
            Some(c) if c.is_ascii_digit() || "@*#?$!-".contains(c) => {
                self.i += 1;
                w.parts.push(Part::Param {
                    name: c.to_string(),
                    op: String::new(),
                    quoted,
                });
            }
            _ => w.push_lit('$', quoted),
        }
        Ok(())
    }

    fn radix_digits(&mut self, radix: u32, max: usize) -> u32 {
        let mut v = 0u32;
        for _ in 0..max {
            match self.peek().and_then(|c| c.to_digit(radix)) {
                Some(d) => {
                    v = v.saturating_mul(radix).saturating_add(d);
                    self.i += 1;
                }
                None => break,
            }
        }
        v
    }

    fn backtick(&mut self, w: &mut Word, quoted: bool) -> Result<(), ParseError> {
        self.i += 1;
        let mut inner = String::new();
        loop {
            match self.peek() {
                None => return self.err("unterminated backquote"),
                Some('`') => {
                    self.i += 1;
                    break;
                }
                Some('\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(c @ ('`' | '\\' | '$')) => {
                            inner.push(c);
                            self.i += 1;
                        }
                        Some(c) => {
                            inner.push('\\');
                            inner.push(c);
                            self.i += 1;
                        }
                        None => return self.err("unterminated backquote"),
                    }
                }
                Some(c) => {
                    inner.push(c);
                    self.i += 1;
                }
            }
        }
        self.enter()?;
        let mut sub = Parser {
            s: inner.chars().collect(),
            i: 0,
            depth: self.depth,
            pending: Vec::new(),
        };
        let body = sub.list(Stop::Eof)?;
        sub.read_heredocs();
        self.depth -= 1;
        w.parts.push(Part::CmdSub { body, quoted });
        Ok(())
    }
}

fn wrap_redirs(cmd: Cmd, redirs: Vec<Redir>) -> Cmd {
    if redirs.is_empty() {
        return cmd;
    }
    // Redirections on a group apply to its commands; keep them as an empty simple command
    // so the analyser still sees the targets.
    let holder = Cmd::Simple(Simple {
        assigns: Vec::new(),
        words: Vec::new(),
        redirs,
    });
    match cmd {
        Cmd::Group(mut l) => {
            l.push(Pipeline { cmds: vec![holder] });
            Cmd::Group(l)
        }
        Cmd::Subshell(mut l) => {
            l.push(Pipeline { cmds: vec![holder] });
            Cmd::Subshell(l)
        }
        other => other,
    }
}

/// Splits `${…}` contents into the parameter name and the operator text.
fn split_param(inner: &str) -> (String, String) {
    let (prefix, rest) = if let Some(r) = inner.strip_prefix('#').filter(|r| !r.is_empty()) {
        ("#", r)
    } else if let Some(r) = inner.strip_prefix('!') {
        ("!", r)
    } else {
        ("", inner)
    };
    let end = rest
        .char_indices()
        .find(|&(k, c)| {
            !(c == '_' || c.is_ascii_alphanumeric() || (k == 0 && "@*#?$!-".contains(c)))
        })
        .map_or(rest.len(), |(k, _)| k);
    let end = if end == 0 {
        rest.chars().next().map_or(0, char::len_utf8)
    } else {
        end
    };
    let name = format!("{prefix}{}", &rest[..end.min(rest.len())]);
    (name, rest[end.min(rest.len())..].to_string())
}
