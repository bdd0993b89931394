//! Output helpers: Go-template `--format`, docker's aligned tables, human units.

pub mod template;
pub mod units;

use serde_json::Value;
pub use template::{Template, TemplateError};

/// Renders `rows` as docker does for list commands: a `table` format gets a header line
/// (the template rendered against `headers`) and tab-aligned columns; any other format is
/// one rendered line per row. `json` is short for `{{json .}}`.
pub fn render_list(format: &str, rows: &[Value], headers: &Value) -> Result<String, TemplateError> {
    let (is_table, body) = match format.strip_prefix("table") {
        Some(rest) => (true, rest.trim_start().to_string()),
        None if format == "json" => (false, "{{json .}}".to_string()),
        None => (false, format.to_string()),
    };
    let body = unescape(&body);
    let tmpl = Template::parse(&body)?;
    let mut lines = Vec::new();
    if is_table {
        lines.push(tmpl.render(headers)?);
    }
    for row in rows {
        lines.push(tmpl.render(row)?);
    }
    if is_table {
        Ok(tabwrite(&lines))
    } else {
        Ok(lines.iter().map(|l| format!("{l}\n")).collect())
    }
}

/// Renders a single object (inspect -f): one line.
pub fn render_one(format: &str, value: &Value) -> Result<String, TemplateError> {
    let body = if format == "json" {
        "{{json .}}".to_string()
    } else {
        unescape(format)
    };
    Template::parse(&body)?.render(value)
}

/// docker lets users type `\t` and `\n` literally in --format.
fn unescape(s: &str) -> String {
    s.replace("\\t", "\t").replace("\\n", "\n")
}

/// Go's tabwriter as docker configures it (minwidth 10, padding 3, pad with spaces):
/// every tab-terminated cell is padded to its column's width; the last cell is left as is.
pub fn tabwrite(lines: &[String]) -> String {
    let split: Vec<Vec<&str>> = lines
        .iter()
        .flat_map(|l| l.split('\n'))
        .map(|l| l.split('\t').collect())
        .collect();
    let mut widths: Vec<usize> = Vec::new();
    for cells in &split {
        for (i, c) in cells.iter().enumerate().take(cells.len().saturating_sub(1)) {
            let w = (c.chars().count() + 3).max(10);
            if widths.len() <= i {
                widths.push(w);
            } else if widths[i] < w {
                widths[i] = w;
            }
        }
    }
    let mut out = String::new();
    for cells in &split {
        for (i, c) in cells.iter().enumerate() {
            out.push_str(c);
            if i + 1 < cells.len() {
                out.push_str(&" ".repeat(widths[i] - c.chars().count()));
            }
        }
        out.push('\n');
    }
    out
}

/// Shortens an id the way docker's `stringid.TruncateID` does (drops `sha256:`, 12 chars).
pub fn short_id(id: &str) -> String {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    id.chars().take(12).collect()
}

/// docker's `formatter.Ellipsis`.
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_alignment_matches_docker() {
        let rows = vec![json!({"ID":"c0ffee000000","Image":"busybox","Command":"\"sh\""})];
        let headers = json!({"ID":"CONTAINER ID","Image":"IMAGE","Command":"COMMAND"});
        let out = render_list("table {{.ID}}\t{{.Image}}\t{{.Command}}", &rows, &headers).unwrap();
        assert_eq!(
            out,
            "CONTAINER ID   IMAGE     COMMAND\nc0ffee000000   busybox   \"sh\"\n"
        );
    }

    #[test]
    fn plain_and_json_formats() {
        let rows = vec![json!({"ID":"a"}), json!({"ID":"b"})];
        assert_eq!(render_list("{{.ID}}", &rows, &json!({})).unwrap(), "a\nb\n");
        assert_eq!(
            render_list("json", &rows, &json!({})).unwrap(),
            "{\"ID\":\"a\"}\n{\"ID\":\"b\"}\n"
        );
        assert_eq!(
            render_list("{{.ID}}\\t.", &rows[..1], &json!({})).unwrap(),
            "a\t.\n"
        );
    }

    #[test]
    fn ids_and_ellipsis() {
        assert_eq!(short_id("sha256:abababababababab"), "abababababab");
        assert_eq!(ellipsis("abcdef", 4), "abc…");
        assert_eq!(ellipsis("abc", 4), "abc");
    }
}
