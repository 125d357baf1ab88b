//! Lists stored as one comma-separated TEXT column (statement classes, tables).
//!
//! Names are joined with `,`; a `,` or `\` inside a name (a quoted identifier may hold either)
//! is escaped with `\`, so that every list reads back as written. The empty list is `""` (so is a
//! list of one empty name, which reads back empty).

/// `names` joined with `,`, escaping `,` and `\`.
pub(crate) fn join(names: &[String]) -> String {
    let mut out = String::new();
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for c in name.chars() {
            if matches!(c, ',' | '\\') {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
}

/// The names of a [`join`]ed list; a trailing lone `\` is kept as is.
pub(crate) fn split(text: &str) -> Vec<String> {
    if text.is_empty() {
        return Vec::new();
    }
    let mut names = Vec::new();
    let mut name = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => name.push(chars.next().unwrap_or('\\')),
            ',' => names.push(std::mem::take(&mut name)),
            c => name.push(c),
        }
    }
    names.push(name);
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_and_split_cases() {
        let cases: &[(&[&str], &str)] = &[
            (&[], ""),
            (&["select"], "select"),
            (&["select", "set"], "select,set"),
            (
                &["public.orders", "orders_2024"],
                "public.orders,orders_2024",
            ),
            (&["a,b", "c"], r"a\,b,c"),
            (&[r"back\slash"], r"back\\slash"),
            (&[r"\,", ","], r"\\\,,\,"),
            (&["", "x"], ",x"),
            (&["x", ""], "x,"),
            (&["ümlaut", "日本"], "ümlaut,日本"),
        ];
        for (names, text) in cases {
            let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
            assert_eq!(join(&names), *text, "{names:?}");
            assert_eq!(split(text), names, "{text:?}");
        }
    }

    #[test]
    fn split_tolerates_foreign_text() {
        let cases: &[(&str, &[&str])] = &[(r"a\", &[r"a\"]), (r"\x", &["x"]), (",", &["", ""])];
        for (text, want) in cases {
            assert_eq!(split(text), *want, "{text:?}");
        }
    }
}
