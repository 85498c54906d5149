//! Inline notebook output: evcxr MIME blocks, base64, HTML tables.
use crate::table::{Table, display_cell};

/// Rows shown by [`table_html`]; the rest are summarised in a footer.
const MAX_ROWS: usize = 200;

/// Standard base64 (RFC 4648, with padding).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `EVCXR_BEGIN_CONTENT <mime>\n<content>\nEVCXR_END_CONTENT\n`: what an
/// evcxr kernel turns into rich output.
pub fn mime_block(mime: &str, content: &str) -> String {
    format!("EVCXR_BEGIN_CONTENT {mime}\n{content}\nEVCXR_END_CONTENT\n")
}

/// Prints `html` as a `text/html` block (inline in an evcxr notebook).
pub fn display_html(html: &str) {
    print!("{}", mime_block("text/html", html));
}

/// Escapes `& < > "` for HTML text and attributes.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// An HTML table; cells are escaped, numbers right-aligned. Rows shorter
/// than the header get empty cells.
pub fn html_table(headers: &[String], rows: &[Vec<String>]) -> String {
    table(headers, rows, None)
}

fn table(headers: &[String], rows: &[Vec<String>], footer: Option<String>) -> String {
    let mut s = String::from("<table style=\"border-collapse:collapse;font-family:sans-serif;font-size:13px\">\n");
    s.push_str("<thead><tr>");
    for h in headers {
        s.push_str(&format!(
            "<th style=\"border-bottom:1px solid #444;padding:2px 8px;text-align:left\">{}</th>",
            escape_html(h)
        ));
    }
    s.push_str("</tr></thead>\n<tbody>\n");
    let width = rows.iter().map(Vec::len).max().unwrap_or(0).max(headers.len());
    for row in rows {
        s.push_str("<tr>");
        for i in 0..width {
            let cell = row.get(i).map_or("", String::as_str);
            let align = if cell.trim().parse::<f64>().is_ok() {
                "right"
            } else {
                "left"
            };
            s.push_str(&format!(
                "<td style=\"padding:2px 8px;text-align:{align}\">{}</td>",
                escape_html(cell)
            ));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody>\n");
    if let Some(f) = footer {
        s.push_str(&format!(
            "<tfoot><tr><td colspan=\"{}\" style=\"padding:2px 8px;color:#666\">{}</td></tr></tfoot>\n",
            width.max(1),
            escape_html(&f)
        ));
    }
    s.push_str("</table>");
    s
}

/// Up to 6 significant digits, scientific outside `[1e-3, 1e6)`.
pub(crate) fn format_float(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let a = x.abs();
    if (1e-3..1e6).contains(&a) {
        let decimals = (5 - a.log10().floor() as i32).clamp(0, 8) as usize;
        let s = format!("{x:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else {
        format!("{x:.5e}")
    }
}

/// A [`Table`] as an HTML table (the first 200 rows, with a footer giving
/// the full shape when cut; floats with 6 significant digits, missing
/// values blank).
pub fn table_html(t: &Table) -> String {
    let headers: Vec<String> = t.column_names().iter().map(|c| c.to_string()).collect();
    let n = t.height().min(MAX_ROWS);
    let rows: Vec<Vec<String>> = (0..n)
        .map(|i| t.columns().iter().map(|c| display_cell(c, i)).collect())
        .collect();
    let footer = (t.height() > n).then(|| format!("showing {n} of {} rows × {} columns", t.height(), t.width()));
    table(&headers, &rows, footer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0xfd]), "//79");
    }

    #[test]
    fn floats_are_short() {
        assert_eq!(format_float(0.123456789), "0.123457");
        assert_eq!(format_float(2.0), "2");
        assert_eq!(format_float(1.5e-7), "1.50000e-7");
    }
}
