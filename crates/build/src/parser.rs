//! The Dockerfile parser: the same tree BuildKit's `parser.Parse` builds.
//!
//! Lines are joined on the escape character (`\` or, with `# escape=`\``, a backtick);
//! comment lines and blank lines inside a continuation are dropped; each instruction's
//! leading `--flags` are split off; the rest is parsed per instruction (JSON or shell form,
//! key=value pairs, whitespace-separated words); `RUN`, `COPY` and `ADD` may carry heredocs.

use crate::shell::{Lex, NoEnv};

/// A parse error, with the 1-based line it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl ParseError {
    pub fn new(line: usize, message: impl Into<String>) -> Self {
        ParseError {
            line,
            message: message.into(),
        }
    }
}

/// A `# name=value` parser directive at the top of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub name: String,
    pub value: String,
    pub line: usize,
}

/// A heredoc attached to an instruction (`<<EOF`, `<<-EOF`, `<<"EOF"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    pub name: String,
    pub content: String,
    /// False when the delimiter was quoted: no variable expansion in the content.
    pub expand: bool,
    /// `<<-`: leading tabs are stripped.
    pub chomp: bool,
    pub fd: u32,
}

/// A warning found while parsing (BuildKit reports the same ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub line: usize,
    pub rule: &'static str,
    pub message: String,
}

/// One instruction, as BuildKit's `parser.Node` has it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Node {
    /// The instruction keyword, lowercased (`run`, `copy` …).
    pub value: String,
    /// The arguments: one string for shell forms, the elements for JSON forms, words for
    /// `FROM`/`EXPOSE`/`ARG`/`COPY`, key/value/separator triples for `ENV`/`LABEL`, the
    /// type then the command for `HEALTHCHECK`.
    pub next: Vec<String>,
    /// For `ONBUILD`, the trigger instruction.
    pub child: Option<Box<Node>>,
    /// The arguments were in JSON (exec) form.
    pub json: bool,
    /// `--name=value` flags, as written.
    pub flags: Vec<String>,
    /// The joined line as written (after continuations).
    pub original: String,
    pub start_line: usize,
    pub end_line: usize,
    pub heredocs: Vec<Heredoc>,
    /// Comment lines just above the instruction.
    pub comments: Vec<String>,
}

/// The result of parsing a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    pub nodes: Vec<Node>,
    pub escape: char,
    pub directives: Vec<Directive>,
    pub warnings: Vec<Warning>,
}

impl Dockerfile {
    pub fn directive(&self, name: &str) -> Option<&str> {
        self.directives
            .iter()
            .find(|d| d.name == name)
            .map(|d| d.value.as_str())
    }

    /// The tree in BuildKit's `Node.Dump()` format (its parser test fixtures use it).
    pub fn dump(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("({})\n", n.dump()))
            .collect()
    }
}

impl Node {
    pub fn dump(&self) -> String {
        let mut s = self.value.to_lowercase();
        if !self.flags.is_empty() {
            let f: Vec<String> = self.flags.iter().map(|f| go_quote(f)).collect();
            s.push_str(&format!(" [{}]", f.join(" ")));
        }
        if let Some(c) = &self.child {
            s.push_str(&format!(" ({})", c.dump()));
        }
        for n in &self.next {
            s.push(' ');
            s.push_str(&go_quote(n));
        }
        s.trim().to_string()
    }
}

/// Go's `strconv.Quote`.
fn go_quote(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            '\x07' => o.push_str("\\a"),
            '\x08' => o.push_str("\\b"),
            '\x0c' => o.push_str("\\f"),
            '\x0b' => o.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                o.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

const DIRECTIVES: &[&str] = &["escape", "syntax", "check"];

struct Directives {
    escape: char,
    done: bool,
    seen: Vec<Directive>,
}

impl Directives {
    /// Looks at a line for a `# name=value` directive while directives are still allowed.
    fn possible(&mut self, line: &str, lineno: usize) -> Result<(), ParseError> {
        if self.done {
            return Ok(());
        }
        let Some((name, value)) = directive(line) else {
            self.done = true;
            return Ok(());
        };
        let name = name.to_ascii_lowercase();
        if !DIRECTIVES.contains(&name.as_str()) {
            self.done = true;
            return Ok(());
        }
        if self.seen.iter().any(|d| d.name == name) {
            return Err(ParseError::new(
                lineno,
                format!("only one {name} parser directive can be used"),
            ));
        }
        if name == "escape" {
            match value.as_str() {
                "`" => self.escape = '`',
                "\\" => self.escape = '\\',
                v => {
                    return Err(ParseError::new(
                        lineno,
                        format!("invalid escape token '{v}' does not match ` or \\"),
                    ))
                }
            }
        }
        self.seen.push(Directive {
            name,
            value,
            line: lineno,
        });
        Ok(())
    }
}

/// `^#[ \t]*([a-zA-Z][a-zA-Z0-9]*)[ \t]*=[ \t]*(.+?)[ \t]*$`
fn directive(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix('#')?;
    let rest = rest.trim_start_matches([' ', '\t']);
    let name_len = rest
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_alphabetic() || (*i > 0 && c.is_ascii_digit())))
        .map(|(i, _)| i)
        .unwrap_or(rest.len());
    if name_len == 0 {
        return None;
    }
    let name = &rest[..name_len];
    let rest = rest[name_len..].trim_start_matches([' ', '\t']);
    let rest = rest.strip_prefix('=')?;
    let value = rest.trim_matches([' ', '\t']);
    if value.is_empty() {
        return None;
    }
    Some((name.to_string(), value.to_string()))
}

fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\x0b' | '\x0c')
}

fn trim_leading_ws(s: &str) -> &str {
    s.trim_start_matches(is_ws)
}

fn is_comment(line: &str) -> bool {
    trim_leading_ws(line).starts_with('#')
}

/// Strips a trailing `<escape>[ \t]*`; returns the line and whether it ended the instruction.
fn trim_continuation(line: &str, escape: char) -> (String, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    match t.strip_suffix(escape) {
        Some(s) => (s.to_string(), false),
        None => (line.to_string(), true),
    }
}

/// Splits a Dockerfile into lines the way Go's `bufio.ScanLines` does.
fn lines(src: &str) -> Vec<&str> {
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let mut v: Vec<&str> = src
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    if src.ends_with('\n') || src.is_empty() {
        v.pop();
    }
    v
}

/// Parses a Dockerfile.
pub fn parse(src: &str) -> Result<Dockerfile, ParseError> {
    let lines = lines(src);
    let mut d = Directives {
        escape: '\\',
        done: false,
        seen: Vec::new(),
    };
    let mut nodes = Vec::new();
    let mut warnings = Vec::new();
    let mut comments: Vec<String> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let raw = lines[i];
        i += 1;
        let lineno = i;
        if is_comment(raw) {
            let c = trim_leading_ws(raw)[1..].trim();
            if c.is_empty() {
                comments.clear();
            } else {
                comments.push(c.to_string());
            }
        }
        let token = trim_leading_ws(raw);
        d.possible(token, lineno)?;
        let token = if token.starts_with('#') { "" } else { token };
        let start = lineno;
        let (mut line, mut eol) = trim_continuation(token, d.escape);
        if eol && line.is_empty() {
            continue;
        }
        let mut empty_continuation = false;
        while !eol && i < lines.len() {
            let raw = lines[i];
            i += 1;
            d.possible(raw, i)?;
            if is_comment(raw) {
                continue;
            }
            if trim_leading_ws(raw).is_empty() {
                empty_continuation = true;
                continue;
            }
            let (l, e) = trim_continuation(raw, d.escape);
            line.push_str(&l);
            eol = e;
        }
        if empty_continuation {
            warnings.push(Warning {
                line: start,
                rule: "NoEmptyContinuation",
                message: format!("Empty continuation line found in: {line}"),
            });
        }
        let mut node = node_from_line(&line, d.escape).map_err(|m| ParseError::new(start, m))?;
        node.comments = std::mem::take(&mut comments);
        if node.can_contain_heredoc() && line.contains("<<") {
            let docs = heredocs_from_line(&line).map_err(|m| ParseError::new(start, m))?;
            for mut doc in docs {
                let mut terminated = false;
                while i < lines.len() {
                    let raw = lines[i];
                    i += 1;
                    let candidate = if doc.chomp {
                        raw.trim_start_matches('\t')
                    } else {
                        raw
                    };
                    if candidate == doc.name {
                        terminated = true;
                        break;
                    }
                    doc.content.push_str(raw);
                    doc.content.push('\n');
                }
                if !terminated {
                    return Err(ParseError::new(
                        start,
                        format!("unterminated heredoc {}", doc.name),
                    ));
                }
                node.heredocs.push(doc);
            }
        }
        node.start_line = start;
        node.end_line = i;
        nodes.push(node);
    }
    if nodes.is_empty() {
        return Err(ParseError::new(
            lines.len().max(1),
            "file with no instructions",
        ));
    }
    Ok(Dockerfile {
        nodes,
        escape: d.escape,
        directives: d.seen,
        warnings,
    })
}

impl Node {
    fn can_contain_heredoc(&self) -> bool {
        let n = match (&self.value[..], &self.child) {
            ("onbuild", Some(c)) => c,
            _ => self,
        };
        matches!(&n.value[..], "run" | "copy" | "add") && !n.json
    }
}

fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, String> {
    let mut lex = Lex::new('\\');
    lex.raw_quotes = true;
    lex.raw_escapes = true;
    let words = lex.process_words(line, &NoEnv).unwrap_or_default();
    let mut docs = Vec::new();
    for w in words {
        if let Some(h) = parse_heredoc(&w)? {
            docs.push(h);
        }
    }
    Ok(docs)
}

/// Parses one word as a heredoc marker: `^(\d*)<<(-?)([^<]*)$`.
pub fn parse_heredoc(word: &str) -> Result<Option<Heredoc>, String> {
    let digits = word.chars().take_while(|c| c.is_ascii_digit()).count();
    let Some(rest) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let fd = if digits > 0 {
        word[..digits].parse::<u32>().map_err(|e| e.to_string())?
    } else {
        0
    };
    let mut lex = Lex::new('\\');
    lex.skip_unset_env = true;
    let words = lex.process_words(rest, &NoEnv).map_err(|e| e.0)?;
    if words.len() != 1 {
        return Ok(None);
    }
    lex.raw_quotes = true;
    let raw = lex.process_words(rest, &NoEnv).map_err(|e| e.0)?;
    if raw.len() != 1 {
        return Err(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        ));
    }
    let q = |s: &str| s.matches(['\'', '"']).count();
    Ok(Some(Heredoc {
        name: words[0].clone(),
        content: String::new(),
        expand: q(&words[0]) == q(&raw[0]),
        chomp,
        fd,
    }))
}

/// Splits `CMD --flags rest` and dispatches on the instruction.
fn node_from_line(line: &str, escape: char) -> Result<Node, String> {
    let trimmed = line.trim_matches(is_ws);
    let (cmd, rest) = match trimmed.find(is_ws) {
        Some(p) => (&trimmed[..p], trim_leading_ws(&trimmed[p..])),
        None => (trimmed, ""),
    };
    let (args, flags) = if rest.is_empty() {
        (String::new(), Vec::new())
    } else {
        let (a, f) = extract_flags(rest);
        (a.trim().to_string(), f)
    };
    let value = cmd.to_lowercase();
    let mut node = Node {
        value: value.clone(),
        flags,
        original: line.to_string(),
        ..Default::default()
    };
    match &value[..] {
        "add" | "copy" | "volume" => match parse_json(&args)? {
            Some(v) => {
                node.next = v;
                node.json = true;
            }
            None => node.next = split_ws(&args),
        },
        "cmd" | "entrypoint" | "run" | "shell" => {
            if !args.is_empty() {
                match parse_json(&args)? {
                    Some(v) => {
                        node.next = v;
                        node.json = true;
                    }
                    None => node.next = vec![args],
                }
            }
        }
        "arg" => node.next = parse_words(&args, escape),
        "env" => node.next = parse_name_val(&args, "ENV", escape)?,
        "label" => node.next = parse_name_val(&args, "LABEL", escape)?,
        "expose" | "from" => node.next = split_ws(&args),
        "maintainer" | "stopsignal" | "user" | "workdir" => {
            if !args.is_empty() {
                node.next = vec![args]
            }
        }
        "healthcheck" => {
            let sep = args.find(char::is_whitespace).unwrap_or(args.len());
            if sep > 0 {
                node.next.push(args[..sep].to_string());
                let cmd = args[sep..].trim_start();
                if !cmd.is_empty() {
                    match parse_json(cmd)? {
                        Some(v) => {
                            node.next.extend(v);
                            node.json = true;
                        }
                        None => node.next.push(cmd.to_string()),
                    }
                }
            }
        }
        "onbuild" => {
            if !args.is_empty() {
                let child = node_from_line(&args, escape)?;
                node.child = Some(Box::new(child));
            }
        }
        _ => {
            // Unknown instructions parse (BuildKit ignores them here) and are rejected
            // when the instructions are typed.
            if !args.is_empty() {
                node.next = vec![args];
            }
        }
    }
    Ok(node)
}

/// `Some(elements)` when `rest` is a JSON array of strings; `None` when it is not JSON.
fn parse_json(rest: &str) -> Result<Option<Vec<String>>, String> {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Ok(None);
    }
    let Ok(v) = serde_json::from_str::<Vec<serde_json::Value>>(rest) else {
        return Ok(None);
    };
    v.into_iter()
        .map(|e| match e {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(
                "when using JSON array syntax, arrays must be comprised of strings only"
                    .to_string(),
            ),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn split_ws(s: &str) -> Vec<String> {
    s.split(|c: char| is_ws(c) || c == '\n')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// BuildKit's `extractBuilderFlags`: leading `--name[=value]` words.
pub fn extract_flags(line: &str) -> (String, Vec<String>) {
    #[derive(PartialEq)]
    enum Ph {
        Spaces,
        Word,
        Quote,
    }
    let b: Vec<char> = line.chars().collect();
    let mut words = Vec::new();
    let mut phase = Ph::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    let rest_from = |p: usize| b[p..].iter().collect::<String>();
    while pos <= b.len() {
        let ch = b.get(pos).copied().unwrap_or('\0');
        if phase == Ph::Spaces {
            if pos == b.len() {
                break;
            }
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            if ch != '-' || b.get(pos + 1) != Some(&'-') {
                return (rest_from(pos), words);
            }
            phase = Ph::Word;
        }
        if pos == b.len() {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        }
        if phase == Ph::Word {
            if ch.is_whitespace() {
                phase = Ph::Spaces;
                if word == "--" {
                    return (rest_from(pos), words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Ph::Quote;
                pos += 1;
                continue;
            }
            let mut c = ch;
            if ch == '\\' {
                if pos + 1 == b.len() {
                    pos += 1;
                    continue;
                }
                pos += 1;
                c = b[pos];
            }
            word.push(c);
            pos += 1;
            continue;
        }
        // In a quote.
        if ch == quote {
            phase = Ph::Word;
            pos += 1;
            continue;
        }
        let mut c = ch;
        if ch == '\\' {
            if pos + 1 == b.len() {
                phase = Ph::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            c = b[pos];
        }
        word.push(c);
        pos += 1;
    }
    (String::new(), words)
}

/// BuildKit's `parseWords`: whitespace-separated words, quotes and escapes kept.
pub fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Ph {
        Spaces,
        Word,
        Quote,
    }
    let b: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut phase = Ph::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    while pos <= b.len() {
        let ch = b.get(pos).copied().unwrap_or('\0');
        if phase == Ph::Spaces {
            if pos == b.len() {
                break;
            }
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            phase = Ph::Word;
        }
        if pos == b.len() {
            if blank_ok || !word.is_empty() {
                words.push(word);
            }
            break;
        }
        if phase == Ph::Word {
            if ch.is_whitespace() {
                phase = Ph::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Ph::Quote;
            }
            let mut c = ch;
            if ch == escape {
                if pos + 1 == b.len() {
                    pos += 1;
                    continue;
                }
                word.push(ch);
                pos += 1;
                c = b[pos];
            }
            word.push(c);
            pos += 1;
            continue;
        }
        // In a quote.
        if ch == quote {
            phase = Ph::Word;
        }
        let mut c = ch;
        if ch == escape && quote != '\'' {
            if pos + 1 == b.len() {
                phase = Ph::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            word.push(ch);
            c = b[pos];
        }
        word.push(c);
        pos += 1;
    }
    words
}

/// `ENV`/`LABEL`: `key value` (legacy) or `key=value ...`, as key/value/separator triples.
fn parse_name_val(rest: &str, key: &str, escape: char) -> Result<Vec<String>, String> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        let t = rest.trim_start_matches(is_ws);
        let Some(p) = t.find(is_ws) else {
            return Err(format!("{key} must have two arguments"));
        };
        let value = trim_leading_ws(&t[p..]);
        return Ok(vec![t[..p].to_string(), value.to_string(), String::new()]);
    }
    let mut out = Vec::new();
    for w in &words {
        let Some((k, v)) = w.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {w:?}. Must be of the form: name=value"
            ));
        };
        out.extend([k.to_string(), v.to_string(), "=".to_string()]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump(src: &str) -> String {
        parse(src).unwrap().dump()
    }
    fn perr(src: &str) -> ParseError {
        parse(src).unwrap_err()
    }

    #[test]
    fn basic_instructions_and_forms() {
        let d = dump("FROM busybox AS b\nRUN echo hi\nCMD [\"sh\", \"-c\", \"x\"]\n");
        assert_eq!(
            d,
            "(from \"busybox\" \"AS\" \"b\")\n(run \"echo hi\")\n(cmd \"sh\" \"-c\" \"x\")\n"
        );
        let f = parse("from x\nRun  a   b  \n").unwrap();
        assert_eq!(f.nodes[1].value, "run");
        assert_eq!(f.nodes[1].next, ["a   b"]);
        assert_eq!(f.nodes[1].original, "Run  a   b  ");
    }

    #[test]
    fn line_numbers() {
        let f = parse("# c\n\nFROM a\nRUN x \\\n  y \\\n\n  # c\n  z\nCMD q\n").unwrap();
        assert_eq!((f.nodes[0].start_line, f.nodes[0].end_line), (3, 3));
        assert_eq!((f.nodes[1].start_line, f.nodes[1].end_line), (4, 8));
        assert_eq!(f.nodes[1].next, ["x   y   z"]);
        assert_eq!(f.nodes[2].start_line, 9);
        assert_eq!(f.warnings.len(), 1);
        assert_eq!(f.warnings[0].rule, "NoEmptyContinuation");
    }

    #[test]
    fn directives() {
        let f =
            parse("# syntax=docker/dockerfile:1\n#escape=`\nFROM a\nRUN dir `\n c:\\x\n").unwrap();
        assert_eq!(f.escape, '`');
        assert_eq!(f.directive("syntax"), Some("docker/dockerfile:1"));
        assert_eq!(f.nodes[1].next, ["dir  c:\\x"]);
        // A directive after a comment or blank line is only a comment.
        let f = parse("# hello\n# escape=`\nFROM a\nRUN a \\\n b\n").unwrap();
        assert_eq!(f.escape, '\\');
        assert_eq!(f.nodes[1].next, ["a  b"]);
        let f = parse("\n# escape=`\nFROM a\n").unwrap();
        assert_eq!(f.escape, '\\');
        // Unknown directives end the directive block.
        let f = parse("# foo=bar\n# escape=`\nFROM a\n").unwrap();
        assert_eq!(f.escape, '\\');
        assert_eq!(
            perr("# escape=\\\n# escape=`\nFROM a\n"),
            ParseError::new(2, "only one escape parser directive can be used")
        );
        assert_eq!(
            perr("# escape=x\nFROM a\n").message,
            "invalid escape token 'x' does not match ` or \\"
        );
        let f = parse("# ESCAPE = `\nFROM a\n").unwrap();
        assert_eq!(f.escape, '`');
    }

    #[test]
    fn continuation_rules() {
        // Trailing whitespace after the escape still continues.
        assert_eq!(
            parse("FROM a\nRUN a \\  \n b\n").unwrap().nodes[1].next,
            ["a  b"]
        );
        // A final continuation at EOF ends the instruction.
        assert_eq!(parse("FROM a\nRUN a \\").unwrap().nodes[1].next, ["a"]);
        // Comments that do not start the line are part of the command.
        assert_eq!(
            parse("FROM a\nRUN a # b\n").unwrap().nodes[1].next,
            ["a # b"]
        );
        // An escaped escape at the end still continues (BuildKit's regex).
        assert_eq!(
            parse("FROM a\nRUN a\\\\\nb\n").unwrap().nodes[1].next,
            ["a\\b"]
        );
        // BOM and CRLF.
        assert_eq!(
            parse("\u{feff}FROM a\r\nRUN b \\\r\n c\r\n").unwrap().nodes[1].next,
            ["b  c"]
        );
        assert_eq!(
            perr("# only a comment\n\n").message,
            "file with no instructions"
        );
    }

    #[test]
    fn flags() {
        let f = parse("FROM --platform=linux/amd64 a\nCOPY --from=b --chown=1:1 x /y\n").unwrap();
        assert_eq!(f.nodes[0].flags, ["--platform=linux/amd64"]);
        assert_eq!(f.nodes[1].flags, ["--from=b", "--chown=1:1"]);
        assert_eq!(f.nodes[1].next, ["x", "/y"]);
        let (rest, fl) = extract_flags("--a=\"x y\" --b -- --c d");
        assert_eq!(fl, ["--a=x y", "--b"]);
        assert_eq!(rest, " --c d");
        let (rest, fl) = extract_flags("--mount=type=cache,target=/x echo");
        assert_eq!((rest.as_str(), fl.len()), ("echo", 1));
        let (rest, fl) = extract_flags("-x y");
        assert_eq!((rest.as_str(), fl.len()), ("-x y", 0));
    }

    #[test]
    fn json_forms() {
        let f =
            parse("FROM a\nCMD [\"a\", \"b c\"]\nCMD [ \"x\" ]\nCMD [\"unterminated\"\nCMD [a]\n")
                .unwrap();
        assert!(f.nodes[1].json);
        assert_eq!(f.nodes[1].next, ["a", "b c"]);
        assert!(f.nodes[2].json);
        assert!(!f.nodes[3].json);
        assert_eq!(f.nodes[3].next, ["[\"unterminated\""]);
        assert!(!f.nodes[4].json);
        assert_eq!(
            perr("FROM a\nCMD [1, 2]\n"),
            ParseError::new(
                2,
                "when using JSON array syntax, arrays must be comprised of strings only"
            )
        );
        let f = parse("FROM a\nCOPY [\"a b\", \"/c\"]\nVOLUME /a /b\n").unwrap();
        assert_eq!(f.nodes[1].next, ["a b", "/c"]);
        assert_eq!(f.nodes[2].next, ["/a", "/b"]);
    }

    #[test]
    fn env_and_label() {
        let f =
            parse("FROM a\nENV A=1 B=\"x y\" C=z\\ w\nENV D some value\nLABEL \"k\"=v\n").unwrap();
        assert_eq!(
            f.nodes[1].next,
            ["A", "1", "=", "B", "\"x y\"", "=", "C", "z\\ w", "="]
        );
        assert_eq!(f.nodes[2].next, ["D", "some value", ""]);
        assert_eq!(f.nodes[3].next, ["\"k\"", "v", "="]);
        assert_eq!(
            perr("FROM a\nENV A\n").message,
            "ENV must have two arguments"
        );
        assert_eq!(
            perr("FROM a\nENV A=1 B\n").message,
            "Syntax error - can't find = in \"B\". Must be of the form: name=value"
        );
    }

    #[test]
    fn heredocs() {
        let src = "FROM a\nRUN <<EOF\necho $HOME\nEOF\nCOPY <<-\"A\" <<B /dst/\n\tone\n\tA\ntwo\nB\nRUN x\n";
        let f = parse(src).unwrap();
        let r = &f.nodes[1];
        assert_eq!(r.heredocs.len(), 1);
        assert_eq!(r.heredocs[0].name, "EOF");
        assert_eq!(r.heredocs[0].content, "echo $HOME\n");
        assert!(r.heredocs[0].expand);
        assert_eq!((r.start_line, r.end_line), (2, 4));
        let c = &f.nodes[2];
        assert_eq!(c.heredocs.len(), 2);
        assert_eq!(c.heredocs[0].name, "A");
        assert!(c.heredocs[0].chomp);
        assert!(!c.heredocs[0].expand);
        assert_eq!(c.heredocs[0].content, "\tone\n");
        assert_eq!(c.heredocs[1].content, "two\n");
        assert_eq!(f.nodes[3].start_line, 10);
        assert_eq!(
            perr("FROM a\nRUN <<EOF\nx\n"),
            ParseError::new(2, "unterminated heredoc EOF")
        );
        // Not heredocs: exec form, other instructions, here-strings, quoted.
        let f =
            parse("FROM a\nRUN [\"<<EOF\"]\nCMD <<EOF\nRUN cat <<< x\nRUN echo '<<E'\n").unwrap();
        assert!(f.nodes.iter().all(|n| n.heredocs.is_empty()));
        let f = parse("FROM a\nRUN 3<<'X' cat <&3\nhi\nX\n").unwrap();
        assert_eq!(f.nodes[1].heredocs[0].fd, 3);
        assert!(!f.nodes[1].heredocs[0].expand);
        let f = parse("FROM a\nRUN cat <<E\"O\"F\nx\nEOF\n").unwrap();
        assert!(!f.nodes[1].heredocs[0].expand);
        assert_eq!(f.nodes[1].heredocs[0].name, "EOF");
    }

    #[test]
    fn onbuild_and_healthcheck() {
        let f = parse("FROM a\nONBUILD RUN echo hi\nHEALTHCHECK --interval=5s CMD [\"true\"]\nHEALTHCHECK NONE\n").unwrap();
        assert_eq!(f.nodes[1].dump(), "onbuild (run \"echo hi\")");
        assert_eq!(f.nodes[2].next, ["CMD", "true"]);
        assert!(f.nodes[2].json);
        assert_eq!(f.nodes[2].flags, ["--interval=5s"]);
        assert_eq!(f.nodes[3].next, ["NONE"]);
        let f = parse("FROM a\nONBUILD COPY <<EOF /x\nhi\nEOF\n").unwrap();
        assert_eq!(f.nodes[1].heredocs[0].content, "hi\n");
    }

    #[test]
    fn parse_words_keeps_quotes() {
        assert_eq!(
            parse_words("a=\"b c\" 'd e' f\\ g", '\\'),
            ["a=\"b c\"", "'d e'", "f\\ g"]
        );
        assert_eq!(parse_words("x=\"a\\\"b\"", '\\'), ["x=\"a\\\"b\""]);
    }

    #[test]
    fn dump_matches_buildkit_format() {
        let d = dump("FROM a\nCOPY --from=x a b\nENV K=v\n");
        assert_eq!(
            d,
            "(from \"a\")\n(copy [\"--from=x\"] \"a\" \"b\")\n(env \"K\" \"v\" \"=\")\n"
        );
    }
}
