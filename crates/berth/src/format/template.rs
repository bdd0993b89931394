//! A hand-written subset of Go's text/template, enough for docker's `--format`:
//! `{{.Field.Sub}}`, `{{json .}}`, `{{index .Labels "k"}}`, `{{join .X ","}}`,
//! `{{lower}}`/`{{upper}}`/`{{title}}`, `{{printf "%s" .X}}`, `{{len}}`, `{{split}}`,
//! pipelines (`{{.Name | upper}}`), `{{if}}`/`{{else}}`/`{{end}}`, `{{range}}`, and `{{-`/`-}}`
//! trimming. Values are JSON values (what the API returns).

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template: {0}")]
    Parse(String),
    #[error("template: executing: {0}")]
    Exec(String),
}

type Result<T> = std::result::Result<T, TemplateError>;

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipeline),
    If(Pipeline, Vec<Node>, Vec<Node>),
    Range(Pipeline, Vec<Node>, Vec<Node>),
}

type Pipeline = Vec<Command>;

#[derive(Debug, Clone)]
struct Command {
    args: Vec<Operand>,
}

#[derive(Debug, Clone)]
enum Operand {
    Field(Vec<String>),
    Func(String),
    Lit(Value),
    Sub(Pipeline),
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

impl Template {
    pub fn parse(src: &str) -> Result<Self> {
        let tokens = lex(src)?;
        let mut pos = 0;
        let (nodes, end) = parse_list(&tokens, &mut pos)?;
        if let Some(e) = end {
            return Err(TemplateError::Parse(format!("unexpected {{{{{e}}}}}")));
        }
        Ok(Self { nodes })
    }

    pub fn render(&self, data: &Value) -> Result<String> {
        let mut out = String::new();
        exec_list(&self.nodes, data, &mut out)?;
        Ok(out)
    }
}

enum Token {
    Text(String),
    Action(String),
}

fn lex(src: &str) -> Result<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut rest = src;
    while let Some(start) = rest.find("{{") {
        let mut text = rest[..start].to_string();
        let after = &rest[start + 2..];
        let trim_left =
            after.starts_with('-') && after[1..].starts_with(|c: char| c.is_whitespace());
        if trim_left {
            text = text.trim_end().to_string();
        }
        let body_start = if trim_left { 1 } else { 0 };
        let end = find_action_end(&after[body_start..])
            .ok_or_else(|| TemplateError::Parse("unclosed action".into()))?;
        let mut body = &after[body_start..body_start + end];
        let mut next = &after[body_start + end + 2..];
        if body.ends_with('-') && body[..body.len() - 1].ends_with(|c: char| c.is_whitespace()) {
            body = &body[..body.len() - 1];
            next = next.trim_start();
        }
        if !text.is_empty() {
            tokens.push(Token::Text(text));
        }
        tokens.push(Token::Action(body.trim().to_string()));
        rest = next;
    }
    if !rest.is_empty() {
        tokens.push(Token::Text(rest.to_string()));
    }
    Ok(tokens)
}

/// The offset of the closing `}}`, skipping string literals.
fn find_action_end(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < b.len() {
        match quote {
            Some(q) => {
                if b[i] == b'\\' && q == b'"' {
                    i += 1;
                } else if b[i] == q {
                    quote = None;
                }
            }
            None => {
                if b[i] == b'"' || b[i] == b'`' {
                    quote = Some(b[i]);
                } else if b[i] == b'}' && b.get(i + 1) == Some(&b'}') {
                    return Some(i);
                }
            }
        }
        i += 1;
    }
    None
}

/// Parses nodes until `end`/`else`, which it returns (as the keyword text).
fn parse_list(tokens: &[Token], pos: &mut usize) -> Result<(Vec<Node>, Option<String>)> {
    let mut nodes = Vec::new();
    while *pos < tokens.len() {
        let tok = &tokens[*pos];
        *pos += 1;
        match tok {
            Token::Text(t) => nodes.push(Node::Text(t.clone())),
            Token::Action(a) => {
                let a = a.as_str();
                if a == "end" || a == "else" || a.starts_with("else ") {
                    return Ok((nodes, Some(a.to_string())));
                }
                if a.starts_with("/*") {
                    continue;
                }
                if let Some(rest) = a.strip_prefix("if ") {
                    nodes.push(parse_block(tokens, pos, rest, true)?);
                } else if let Some(rest) = a.strip_prefix("range ") {
                    nodes.push(parse_block(tokens, pos, rest, false)?);
                } else {
                    nodes.push(Node::Action(parse_pipeline(a)?));
                }
            }
        }
    }
    Ok((nodes, None))
}

fn parse_block(tokens: &[Token], pos: &mut usize, head: &str, is_if: bool) -> Result<Node> {
    let pipe = parse_pipeline(head)?;
    let (body, end) = parse_list(tokens, pos)?;
    let (alt, end) = match end.as_deref() {
        Some("else") => parse_list(tokens, pos)?,
        Some(e) if e.starts_with("else if ") && is_if => {
            // `else if X` is an `if` nested in the else branch, sharing the outer `end`.
            let nested = parse_block(tokens, pos, &e["else if ".len()..], true)?;
            return Ok(Node::If(pipe, body, vec![nested]));
        }
        _ => (Vec::new(), end),
    };
    if end.as_deref() != Some("end") {
        return Err(TemplateError::Parse("missing {{end}}".into()));
    }
    Ok(if is_if {
        Node::If(pipe, body, alt)
    } else {
        Node::Range(pipe, body, alt)
    })
}

fn parse_pipeline(src: &str) -> Result<Pipeline> {
    let words = split_words(src)?;
    let mut pipeline = Vec::new();
    let mut current = Vec::new();
    for w in words {
        if w == "|" {
            if current.is_empty() {
                return Err(TemplateError::Parse(format!("missing command in {src:?}")));
            }
            pipeline.push(Command {
                args: std::mem::take(&mut current),
            });
        } else {
            current.push(parse_operand(&w)?);
        }
    }
    if current.is_empty() {
        return Err(TemplateError::Parse(format!("empty command in {src:?}")));
    }
    pipeline.push(Command { args: current });
    Ok(pipeline)
}

fn split_words(src: &str) -> Result<Vec<String>> {
    let mut words = Vec::new();
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' || c == '`' {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != c {
                if c == '"' && chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            if i >= chars.len() {
                return Err(TemplateError::Parse("unterminated string".into()));
            }
            i += 1;
            words.push(chars[start..i].iter().collect());
        } else if c == '(' {
            let start = i;
            let mut depth = 0;
            while i < chars.len() {
                match chars[i] {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            if i >= chars.len() {
                return Err(TemplateError::Parse("unclosed (".into()));
            }
            i += 1;
            words.push(chars[start..i].iter().collect());
        } else if c == '|' {
            words.push("|".into());
            i += 1;
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '|' && chars[i] != '('
            {
                i += 1;
            }
            words.push(chars[start..i].iter().collect());
        }
    }
    Ok(words)
}

fn parse_operand(w: &str) -> Result<Operand> {
    if w == "." {
        return Ok(Operand::Field(Vec::new()));
    }
    if let Some(path) = w.strip_prefix('.') {
        return Ok(Operand::Field(
            path.split('.').map(str::to_string).collect(),
        ));
    }
    if w.starts_with('"') {
        let s: String = serde_json::from_str(w)
            .map_err(|e| TemplateError::Parse(format!("bad string {w}: {e}")))?;
        return Ok(Operand::Lit(Value::String(s)));
    }
    if let Some(raw) = w.strip_prefix('`').and_then(|r| r.strip_suffix('`')) {
        return Ok(Operand::Lit(Value::String(raw.to_string())));
    }
    if let Some(inner) = w.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
        return Ok(Operand::Sub(parse_pipeline(inner)?));
    }
    match w {
        "true" => return Ok(Operand::Lit(Value::Bool(true))),
        "false" => return Ok(Operand::Lit(Value::Bool(false))),
        "nil" => return Ok(Operand::Lit(Value::Null)),
        _ => {}
    }
    if let Ok(n) = w.parse::<i64>() {
        return Ok(Operand::Lit(Value::from(n)));
    }
    if w.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return Ok(Operand::Func(w.to_string()));
    }
    Err(TemplateError::Parse(format!("unexpected {w:?}")))
}

fn exec_list(nodes: &[Node], dot: &Value, out: &mut String) -> Result<()> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => out.push_str(&go_print(&eval_pipeline(p, dot)?)),
            Node::If(p, body, alt) => {
                if truthy(&eval_pipeline(p, dot)?) {
                    exec_list(body, dot, out)?;
                } else {
                    exec_list(alt, dot, out)?;
                }
            }
            Node::Range(p, body, alt) => {
                let v = eval_pipeline(p, dot)?;
                let items: Vec<Value> = match v {
                    Value::Array(a) => a,
                    Value::Object(m) => m.into_iter().map(|(_, v)| v).collect(),
                    Value::Null => Vec::new(),
                    other => {
                        return Err(TemplateError::Exec(format!(
                            "range can't iterate over {}",
                            go_print(&other)
                        )))
                    }
                };
                if items.is_empty() {
                    exec_list(alt, dot, out)?;
                }
                for item in &items {
                    exec_list(body, item, out)?;
                }
            }
        }
    }
    Ok(())
}

fn eval_pipeline(p: &Pipeline, dot: &Value) -> Result<Value> {
    let mut piped: Option<Value> = None;
    for cmd in p {
        piped = Some(eval_command(cmd, dot, piped)?);
    }
    Ok(piped.unwrap_or(Value::Null))
}

fn eval_command(cmd: &Command, dot: &Value, piped: Option<Value>) -> Result<Value> {
    let (first, rest) = cmd
        .args
        .split_first()
        .ok_or_else(|| TemplateError::Exec("empty command".into()))?;
    match first {
        Operand::Func(name) => {
            let mut args = rest
                .iter()
                .map(|a| eval_operand(a, dot))
                .collect::<Result<Vec<_>>>()?;
            args.extend(piped);
            call(name, args)
        }
        op => {
            if !rest.is_empty() || piped.is_some() {
                return Err(TemplateError::Exec(
                    "can't give arguments to a non-function".into(),
                ));
            }
            eval_operand(op, dot)
        }
    }
}

fn eval_operand(op: &Operand, dot: &Value) -> Result<Value> {
    match op {
        Operand::Field(path) => Ok(lookup(dot, path)),
        Operand::Lit(v) => Ok(v.clone()),
        Operand::Sub(p) => eval_pipeline(p, dot),
        Operand::Func(name) => call(name, Vec::new()),
    }
}

fn lookup(v: &Value, path: &[String]) -> Value {
    let mut cur = v;
    for key in path {
        match cur.get(key.as_str()) {
            Some(next) => cur = next,
            None => return Value::Null,
        }
    }
    cur.clone()
}

fn call(name: &str, args: Vec<Value>) -> Result<Value> {
    let arg = |i: usize| args.get(i).cloned().unwrap_or(Value::Null);
    let want = |n: usize| {
        if args.len() < n {
            Err(TemplateError::Exec(format!(
                "wrong number of args for {name}: want {n} got {}",
                args.len()
            )))
        } else {
            Ok(())
        }
    };
    Ok(match name {
        "json" => {
            want(1)?;
            Value::String(
                serde_json::to_string(&arg(0)).map_err(|e| TemplateError::Exec(e.to_string()))?,
            )
        }
        "lower" => Value::String(go_print(&arg(0)).to_lowercase()),
        "upper" => Value::String(go_print(&arg(0)).to_uppercase()),
        "title" => Value::String(title_case(&go_print(&arg(0)))),
        "len" => Value::from(match arg(0) {
            Value::Array(a) => a.len(),
            Value::Object(m) => m.len(),
            Value::String(s) => s.len(),
            _ => 0,
        }),
        "join" => {
            want(2)?;
            let sep = go_print(&arg(1));
            match arg(0) {
                Value::Array(a) => {
                    Value::String(a.iter().map(go_print).collect::<Vec<_>>().join(&sep))
                }
                Value::Null => Value::String(String::new()),
                other => Value::String(go_print(&other)),
            }
        }
        "split" => {
            want(2)?;
            let s = go_print(&arg(0));
            let sep = go_print(&arg(1));
            Value::Array(
                s.split(sep.as_str())
                    .map(|p| Value::String(p.into()))
                    .collect(),
            )
        }
        "index" => {
            want(2)?;
            let mut cur = arg(0);
            for key in &args[1..] {
                cur = match (&cur, key) {
                    (Value::Object(m), k) => m.get(&go_print(k)).cloned().unwrap_or(Value::Null),
                    (Value::Array(a), Value::Number(n)) => a
                        .get(n.as_u64().unwrap_or(u64::MAX) as usize)
                        .cloned()
                        .unwrap_or(Value::Null),
                    _ => Value::Null,
                };
            }
            cur
        }
        "printf" => {
            want(1)?;
            Value::String(sprintf(&go_print(&arg(0)), &args[1..]))
        }
        "print" => Value::String(args.iter().map(go_print).collect::<Vec<_>>().join(" ")),
        "println" => Value::String(format!(
            "{}\n",
            args.iter().map(go_print).collect::<Vec<_>>().join(" ")
        )),
        "truncate" => {
            want(2)?;
            let n = arg(1).as_u64().unwrap_or(0) as usize;
            Value::String(go_print(&arg(0)).chars().take(n).collect())
        }
        "pad" => {
            want(3)?;
            let l = arg(1).as_u64().unwrap_or(0) as usize;
            let r = arg(2).as_u64().unwrap_or(0) as usize;
            Value::String(format!(
                "{}{}{}",
                " ".repeat(l),
                go_print(&arg(0)),
                " ".repeat(r)
            ))
        }
        "eq" => {
            want(2)?;
            Value::Bool(args[1..].iter().any(|a| *a == args[0]))
        }
        "ne" => {
            want(2)?;
            Value::Bool(args[0] != args[1])
        }
        "not" => Value::Bool(!truthy(&arg(0))),
        "and" => args
            .iter()
            .find(|a| !truthy(a))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null),
        "or" => args
            .iter()
            .find(|a| truthy(a))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null),
        _ => {
            return Err(TemplateError::Exec(format!(
                "function {name:?} not defined"
            )))
        }
    })
}

fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric();
    }
    out
}

/// Go's `%s %d %v %q %%` for template printf.
fn sprintf(fmt: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut it = args.iter();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        // Skip width/flags, which docker formats rarely use.
        let mut width = String::new();
        while let Some(&d) = chars.peek() {
            if d.is_ascii_digit() || d == '-' {
                width.push(d);
                chars.next();
            } else {
                break;
            }
        }
        let verb = chars.next().unwrap_or('%');
        if verb == '%' {
            out.push('%');
            continue;
        }
        let v = it.next().cloned().unwrap_or(Value::Null);
        let s = match verb {
            'q' => serde_json::to_string(&go_print(&v)).unwrap_or_default(),
            _ => go_print(&v),
        };
        let w: i64 = width.parse().unwrap_or(0);
        let pad = (w.unsigned_abs() as usize).saturating_sub(s.chars().count());
        if w < 0 {
            out.push_str(&s);
            out.push_str(&" ".repeat(pad));
        } else {
            out.push_str(&" ".repeat(pad));
            out.push_str(&s);
        }
    }
    out
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

/// How Go's fmt prints a decoded JSON value.
pub fn go_print(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.to_string()
            } else if let Some(u) = n.as_u64() {
                u.to_string()
            } else {
                let f = n.as_f64().unwrap_or(0.0);
                if f.fract() == 0.0 && f.abs() < 1e21 {
                    format!("{f:.0}")
                } else {
                    f.to_string()
                }
            }
        }
        Value::String(s) => s.clone(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(go_print_inner).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", go_print_inner(&m[*k])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

fn go_print_inner(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        other => go_print(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(t: &str, v: &Value) -> String {
        Template::parse(t).unwrap().render(v).unwrap()
    }

    #[test]
    fn fields_and_nesting() {
        let v = json!({"ID": "abc", "State": {"Status": "running", "Pid": 42}});
        assert_eq!(
            r("{{.ID}} {{.State.Status}} {{.State.Pid}}", &v),
            "abc running 42"
        );
        assert_eq!(r("{{.Missing}}", &v), "<no value>");
        assert_eq!(r("{{.State.Missing.Deeper}}", &v), "<no value>");
    }

    #[test]
    fn json_index_join() {
        let v = json!({"Labels": {"k": "v", "a b": "c"}, "Cmd": ["sh", "-c", "x"], "N": 1.5});
        assert_eq!(r("{{json .Cmd}}", &v), r#"["sh","-c","x"]"#);
        assert_eq!(r(r#"{{index .Labels "k"}}"#, &v), "v");
        assert_eq!(r(r#"{{join .Cmd ","}}"#, &v), "sh,-c,x");
        assert_eq!(r("{{json .}}", &json!({"a":1})), r#"{"a":1}"#);
        assert_eq!(r("{{.Labels}}", &v), "map[a b:c k:v]");
        assert_eq!(r("{{.Cmd}} {{.N}}", &v), "[sh -c x] 1.5");
    }

    #[test]
    fn functions_and_pipes() {
        let v = json!({"Name": "/Web", "Size": 12});
        assert_eq!(r("{{lower .Name}} {{upper .Name}}", &v), "/web /WEB");
        assert_eq!(r("{{.Name | lower}}", &v), "/web");
        assert_eq!(r(r#"{{printf "%s=%d" .Name .Size}}"#, &v), "/Web=12");
        assert_eq!(r(r#"{{printf "%-6s|" "ab"}}"#, &v), "ab    |");
        assert_eq!(r(r#"{{len (split "a,b,c" ",")}}"#, &v), "3");
        assert_eq!(r("{{title \"hello world\"}}", &v), "Hello World");
    }

    #[test]
    fn if_range_and_trim() {
        let v = json!({"Up": true, "Ports": [80, 443], "None": []});
        assert_eq!(r("{{if .Up}}yes{{else}}no{{end}}", &v), "yes");
        assert_eq!(
            r("{{if .Down}}yes{{else if .Up}}up{{else}}no{{end}}", &v),
            "up"
        );
        assert_eq!(r("{{range .Ports}}[{{.}}]{{end}}", &v), "[80][443]");
        assert_eq!(r("{{range .None}}x{{else}}empty{{end}}", &v), "empty");
        assert_eq!(r("a  {{- .Up -}}  b", &v), "atrueb");
        assert_eq!(r(r#"{{if eq .Up true}}t{{end}}"#, &v), "t");
    }

    #[test]
    fn errors() {
        assert!(Template::parse("{{.A").is_err());
        assert!(Template::parse("{{if .A}}x").is_err());
        assert!(Template::parse("{{end}}").is_err());
        assert!(Template::parse("{{nosuch .A}}")
            .unwrap()
            .render(&json!({}))
            .is_err());
    }
}
