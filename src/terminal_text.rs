//! Text that came from a transcript or Codex's index (a title, a first message, a folder)
//! shown on a terminal. Such text is whatever a model or a user typed: an ESC sequence in a
//! title could recolour, move the cursor, retitle the window or hide the lines above it,
//! and a bidi override could make a row read as something else. So every control
//! character (C0, DEL, C1) and every invisible direction or line control is written as a
//! visible escape; the JSON view keeps the text as it is (serde escapes it there).

use unicode_width::UnicodeWidthChar;

/// Characters that steer how text is laid out without being seen: bidi embeddings,
/// overrides and isolates, direction marks, and the Unicode line and paragraph separators.
fn is_invisible_control(c: char) -> bool {
    matches!(c,
        '\u{200e}' | '\u{200f}' | '\u{061c}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}'
        | '\u{2028}' | '\u{2029}')
}

/// One line a terminal shows as written: whitespace controls (tab, newline, carriage
/// return) become a space, and every other control is spelled out (`\x1b`, `\u{202e}`), so
/// an escape sequence arrives as harmless visible text.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\t' | '\n' | '\r' => out.push(' '),
            c if (c as u32) < 0x100 && c.is_control() => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if is_invisible_control(c) => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The columns `text` takes on a terminal (a wide character takes two).
pub fn width(text: &str) -> usize {
    text.chars().map(|c| c.width().unwrap_or(0)).sum()
}

/// `text` (already `one_line`) cut to at most `columns` columns, ending in `…` when cut.
pub fn clip_end(text: &str, columns: usize) -> String {
    if width(text) <= columns {
        return text.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w + 1 > columns {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

/// `text` cut from the front to at most `columns` columns, starting with `…` when cut:
/// a folder's last components say more than its first.
pub fn clip_start(text: &str, columns: usize) -> String {
    if width(text) <= columns {
        return text.to_string();
    }
    let mut kept = Vec::new();
    let mut used = 0;
    for c in text.chars().rev() {
        let w = c.width().unwrap_or(0);
        if used + w + 1 > columns {
            break;
        }
        kept.push(c);
        used += w;
    }
    std::iter::once('…').chain(kept.into_iter().rev()).collect()
}

/// `text` padded with spaces to `columns` columns.
pub fn pad(text: &str, columns: usize) -> String {
    let mut out = text.to_string();
    out.extend(std::iter::repeat_n(
        ' ',
        columns.saturating_sub(width(text)),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_control_character_reaches_the_terminal() {
        let hostile = "a\u{1b}[2J\u{1b}]0;owned\u{7}b\u{7f}c\u{9b}31md\u{202e}e\u{2028}f\tg\nh\r";
        let shown = one_line(hostile);
        assert!(
            shown
                .chars()
                .all(|c| !c.is_control() && !is_invisible_control(c)),
            "{shown:?}"
        );
        assert_eq!(
            shown,
            "a\\x1b[2J\\x1b]0;owned\\x07b\\x7fc\\x9b31md\\u{202e}e\\u{2028}f g h "
        );
        assert_eq!(
            one_line("Fix the build — ünïcode 日本"),
            "Fix the build — ünïcode 日本"
        );
    }

    #[test]
    fn clipping_counts_columns_and_marks_the_cut() {
        assert_eq!(clip_end("abcdef", 6), "abcdef");
        assert_eq!(clip_end("abcdef", 4), "abc…");
        assert_eq!(clip_end("日本語です", 5), "日本…");
        assert_eq!(clip_start("/home/me/src/project", 10), "…c/project");
        assert_eq!(width(&pad("日本", 6)), 6);
    }
}
