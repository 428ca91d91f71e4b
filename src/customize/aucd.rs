//! Is an image URL allowed by an auctioneer? Reads the
//! `AllowedFileSystemImageRegexs` setting of a Tycoon auctioneer
//! configuration (`/etc/tycoon/tycoon_aucd.conf`) and matches a URL
//! against its regular expressions.
//!
//! Tycoon's configuration files are Python code that sets variables, so
//! this reads the assignments to that one variable the way Python would
//! for the common forms: `X = [...]` or `(...)` or a single string
//! (replacing what was set before), `X += [...]`, `X.append('...')` and
//! `X.extend([...])`, with Python string literals (quotes, triple quotes,
//! raw strings, escapes, adjacent literals joined). Anything else assigned
//! to it (a computed value) is reported, not guessed.
//!
//! A URL is allowed when a pattern matches at its start, as Python's
//! `re.match` does (not necessarily to its end).

use crate::error::{Error, Result};

/// One pattern of the setting, with where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    /// The regular expression, as Python reads the literal.
    pub regex: String,
    /// 1-based line of the file.
    pub line: usize,
}

/// The name of the setting.
pub const SETTING: &str = "AllowedFileSystemImageRegexs";

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Name(String),
    Str(String),
    Op(String),
    Newline,
    Other,
}

fn tokenize(src: &str) -> Result<Vec<(Tok, usize)>> {
    let b: Vec<char> = src.chars().collect();
    let mut i = 0;
    let mut line = 1;
    let mut depth = 0i32;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        if c == '\n' {
            if depth == 0 {
                out.push((Tok::Newline, line));
            }
            line += 1;
            i += 1;
        } else if c == '\\' && b.get(i + 1) == Some(&'\n') {
            line += 1;
            i += 2;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '#' {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' {
            let s = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            let word: String = b[s..i].iter().collect();
            let lower = word.to_ascii_lowercase();
            let is_prefix = matches!(lower.as_str(), "r" | "u" | "b" | "br" | "rb" | "ur");
            if is_prefix && i < b.len() && (b[i] == '\'' || b[i] == '"') {
                let (v, ni, nl) = string_lit(&b, i, line, lower.contains('r'))?;
                out.push((Tok::Str(v), line));
                i = ni;
                line = nl;
            } else {
                out.push((Tok::Name(word), line));
            }
        } else if c == '\'' || c == '"' {
            let (v, ni, nl) = string_lit(&b, i, line, false)?;
            out.push((Tok::Str(v), line));
            i = ni;
            line = nl;
        } else if c == '+' && b.get(i + 1) == Some(&'=') {
            out.push((Tok::Op("+=".into()), line));
            i += 2;
        } else if "=()[],.".contains(c) {
            if c == '=' && b.get(i + 1) == Some(&'=') {
                out.push((Tok::Other, line));
                i += 2;
                continue;
            }
            match c {
                '(' | '[' => depth += 1,
                ')' | ']' => depth = (depth - 1).max(0),
                _ => {}
            }
            out.push((Tok::Op(c.to_string()), line));
            i += 1;
        } else {
            if c == '{' {
                depth += 1;
            } else if c == '}' {
                depth = (depth - 1).max(0);
            }
            out.push((Tok::Other, line));
            i += 1;
        }
    }
    out.push((Tok::Newline, line));
    Ok(out)
}

/// A Python string literal starting at `b[i]` (a quote).
fn string_lit(
    b: &[char],
    mut i: usize,
    mut line: usize,
    raw: bool,
) -> Result<(String, usize, usize)> {
    let q = b[i];
    let start_line = line;
    let triple = b.get(i + 1) == Some(&q) && b.get(i + 2) == Some(&q);
    i += if triple { 3 } else { 1 };
    let mut v = String::new();
    loop {
        let Some(&c) = b.get(i) else {
            return Err(Error::Invalid(format!(
                "line {start_line}: a string that never ends"
            )));
        };
        if triple {
            if c == q && b.get(i + 1) == Some(&q) && b.get(i + 2) == Some(&q) {
                return Ok((v, i + 3, line));
            }
        } else if c == q {
            return Ok((v, i + 1, line));
        } else if c == '\n' {
            return Err(Error::Invalid(format!(
                "line {start_line}: a string that never ends"
            )));
        }
        if c == '\n' {
            line += 1;
        }
        if c == '\\' && i + 1 < b.len() {
            let n = b[i + 1];
            if raw {
                v.push('\\');
                v.push(n);
                i += 2;
                continue;
            }
            i += 2;
            match n {
                '\n' => line += 1,
                'n' => v.push('\n'),
                't' => v.push('\t'),
                'r' => v.push('\r'),
                '0' => v.push('\0'),
                '\\' | '\'' | '"' => v.push(n),
                'x' => {
                    let h: String = b.get(i..i + 2).unwrap_or(&[]).iter().collect();
                    match u32::from_str_radix(&h, 16).ok().and_then(char::from_u32) {
                        Some(ch) => {
                            v.push(ch);
                            i += 2;
                        }
                        None => {
                            v.push('\\');
                            v.push('x');
                        }
                    }
                }
                // Unknown escapes stay as written (Python keeps them), which
                // is what regular expressions like "\." rely on.
                other => {
                    v.push('\\');
                    v.push(other);
                }
            }
            continue;
        }
        v.push(c);
        i += 1;
    }
}

/// Read the patterns of the setting from the configuration's text.
/// An assignment whose value is not made of string literals is an error
/// naming its line.
pub fn patterns(conf: &str) -> Result<Vec<Pattern>> {
    let toks = tokenize(conf)?;
    let mut pats: Vec<Pattern> = Vec::new();
    let mut i = 0;
    let at_stmt_start = |i: usize| i == 0 || toks[i - 1].0 == Tok::Newline;
    while i < toks.len() {
        if toks[i].0 == Tok::Name(SETTING.into()) && at_stmt_start(i) {
            let line = toks[i].1;
            let op = toks.get(i + 1).map(|t| t.0.clone());
            let (replace, start) = match op {
                Some(Tok::Op(o)) if o == "=" => (true, i + 2),
                Some(Tok::Op(o)) if o == "+=" => (false, i + 2),
                Some(Tok::Op(o)) if o == "." => {
                    match (toks.get(i + 2).map(|t| &t.0), toks.get(i + 3).map(|t| &t.0)) {
                        (Some(Tok::Name(m)), Some(Tok::Op(p)))
                            if p == "(" && (m == "append" || m == "extend") =>
                        {
                            (false, i + 3)
                        }
                        _ => {
                            return Err(Error::Invalid(format!(
                                "line {line}: {SETTING} is changed in a way ext3edit cannot read"
                            )))
                        }
                    }
                }
                _ => {
                    i += 1;
                    continue;
                }
            };
            // The value: everything up to the end of the statement.
            let mut j = start;
            let mut vals = Vec::new();
            let mut cur: Option<(String, usize)> = None;
            while j < toks.len() && toks[j].0 != Tok::Newline {
                match &toks[j].0 {
                    Tok::Str(s) => match &mut cur {
                        Some((c, _)) => c.push_str(s),
                        None => cur = Some((s.clone(), toks[j].1)),
                    },
                    Tok::Op(o) if o == "," || o == "(" || o == "[" || o == ")" || o == "]" => {
                        if let Some((s, l)) = cur.take() {
                            vals.push(Pattern { regex: s, line: l });
                        }
                    }
                    _ => {
                        return Err(Error::Invalid(format!(
                            "line {line}: {SETTING} is set to a computed value ext3edit cannot read"
                        )))
                    }
                }
                j += 1;
            }
            if let Some((s, l)) = cur.take() {
                vals.push(Pattern { regex: s, line: l });
            }
            if replace {
                pats = vals;
            } else {
                pats.extend(vals);
            }
            i = j;
        } else {
            i += 1;
        }
    }
    Ok(pats)
}

/// The verdict for one URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The first pattern that matches, if any.
    pub matched: Option<Pattern>,
    /// Every pattern read, in order.
    pub patterns: Vec<Pattern>,
    /// Patterns that are not valid regular expressions here: (line, why).
    pub invalid: Vec<(usize, String)>,
}

/// Is `url` allowed by the configuration text `conf`?
pub fn allowed(conf: &str, url: &str) -> Result<Verdict> {
    let patterns = patterns(conf)?;
    let mut matched = None;
    let mut invalid = Vec::new();
    for p in &patterns {
        match regex::Regex::new(&format!("^(?:{})", p.regex)) {
            Ok(re) => {
                if matched.is_none() && re.is_match(url) {
                    matched = Some(p.clone());
                }
            }
            Err(e) => invalid.push((
                p.line,
                e.to_string()
                    .lines()
                    .last()
                    .unwrap_or("invalid")
                    .trim()
                    .to_string(),
            )),
        }
    }
    Ok(Verdict {
        matched,
        patterns,
        invalid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = r#"
# Tycoon auctioneer
BankHostName = "bank.example"
AllowedFileSystemImageRegexs = [
    r'http://tycoon\.hpl\.hp\.com/~tycoon/dl/images/.*\.ext3\.bz2',  # base
    "https://images\\.example\\.org/"
        "[a-z0-9.-]+\\.ext3(\\.(bz2|gz|zip))?",
]
AllowedFileSystemImageRegexs += ['ftp://mirror/.*']
AllowedFileSystemImageRegexs.append("file:///srv/.*")
"#;

    #[test]
    fn reads_python_literals() {
        let p = patterns(CONF).unwrap();
        let r: Vec<&str> = p.iter().map(|p| p.regex.as_str()).collect();
        assert_eq!(
            r,
            vec![
                r"http://tycoon\.hpl\.hp\.com/~tycoon/dl/images/.*\.ext3\.bz2",
                r"https://images\.example\.org/[a-z0-9.-]+\.ext3(\.(bz2|gz|zip))?",
                "ftp://mirror/.*",
                "file:///srv/.*",
            ]
        );
        assert_eq!(p[0].line, 5);
    }

    #[test]
    fn matches_at_the_start() {
        let v = allowed(
            CONF,
            "http://tycoon.hpl.hp.com/~tycoon/dl/images/centos.5-0.ext3.bz2",
        )
        .unwrap();
        assert_eq!(v.matched.unwrap().line, 5);
        let v = allowed(CONF, "https://images.example.org/c5.ext3.gz").unwrap();
        assert_eq!(v.matched.unwrap().line, 6);
        let v = allowed(
            CONF,
            "x-http://tycoon.hpl.hp.com/~tycoon/dl/images/a.ext3.bz2",
        )
        .unwrap();
        assert!(v.matched.is_none());
    }

    #[test]
    fn later_assignment_replaces() {
        let p = patterns(
            "AllowedFileSystemImageRegexs = ['a']\nAllowedFileSystemImageRegexs = ('b',)\n",
        )
        .unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].regex, "b");
    }

    #[test]
    fn computed_values_are_refused() {
        let e = patterns("AllowedFileSystemImageRegexs = base + ['x']\n").unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
    }
}
