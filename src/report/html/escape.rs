//! Escaping for text and attribute values. Kernel lines, errors, command
//! output and scenario titles are hostile input: a line a filesystem logs can
//! hold `<script>` as easily as a path can, so nothing reaches the page
//! without passing through here.

/// `text` safe inside an element or a double- or single-quoted attribute.
/// C0 controls other than tab and newline become U+FFFD: the HTML parser
/// would keep some and drop others, and the page should show that something
/// odd was there.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' => out.push(c),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A fragment of an `id` attribute from a name a scenario chose: only
/// `[A-Za-z0-9_-]` survive, so ids never need escaping and never collide
/// with the page's own ids (which carry a prefix).
pub fn id_fragment(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_quotes_are_escaped() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }

    #[test]
    fn controls_become_replacement_characters_but_newlines_stay() {
        assert_eq!(esc("a\0b\x1bc\nd\te"), "a\u{FFFD}b\u{FFFD}c\nd\te");
    }

    #[test]
    fn an_escaped_attribute_cannot_be_closed_early() {
        let hostile = r#"x" onmouseover="alert(1)"#;
        let attr = format!(r#"data-text="{}""#, esc(hostile));
        assert_eq!(attr.matches('"').count(), 2, "{attr}");
    }

    #[test]
    fn id_fragments_keep_only_safe_characters() {
        assert_eq!(id_fragment("step \"1\"<x>"), "step__1__x_");
    }
}
