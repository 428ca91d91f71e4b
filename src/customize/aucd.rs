//! Is an image URL allowed by an auctioneer? Reads the
//! `AllowedFileSystemImageRegexs` setting of a Tycoon auctioneer
//! configuration (`/etc/tycoon/tycoon_aucd.conf`) and matches a URL
//! against its regular expressions.
//!
//! Tycoon's configuration files are Python code that sets variables, so
//! this reads the assignments to that one variable the way Python would
//! for the common forms: `X = [...]` or `(...)` or a single string
//! (replacing what was set before), `X += [...]`, `X.append('...')` and
//! `X.extend([...])`, at the top level of the file, with Python string
//! literals (quotes, triple quotes, raw strings, the escapes of Python:
//! `\\ \' \" \a \b \f \n \r \t \v \ooo \xhh`, `\u` and `\U` in u''
//! strings, unknown escapes kept as backslash and character; adjacent
//! literals joined). Anything else that could change the setting (a
//! computed value, an assignment inside `if` or any indented block, `del`,
//! item assignment, other methods, the name used elsewhere, `exec`,
//! `from M import *`, `\N{...}`, or `\u` in a plain string, which Python 2
//! keeps and Python 3 decodes) makes the verdict "cannot decide" with its
//! line, not a guess.
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
    /// White space before the first token of a logical line: the
    /// statement is inside a block.
    Indent,
    Other,
    /// A literal ext3edit does not evaluate as Python would, and why.
    Opaque(String),
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
            if depth == 0
                && out
                    .last()
                    .is_none_or(|t: &(Tok, usize)| t.0 == Tok::Newline)
            {
                // Leading space of a line; blank and comment lines do not count.
                let mut j = i;
                while j < b.len() && b[j] != '\n' && b[j].is_whitespace() {
                    j += 1;
                }
                if j < b.len() && b[j] != '\n' && b[j] != '#' {
                    out.push((Tok::Indent, line));
                }
                i = j;
                continue;
            }
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
            let is_prefix = matches!(
                lower.as_str(),
                "r" | "u" | "b" | "br" | "rb" | "ur" | "f" | "fr" | "rf"
            );
            if is_prefix && i < b.len() && (b[i] == '\'' || b[i] == '"') {
                let kind = if lower.contains('u') {
                    Kind::Unicode
                } else if lower.contains('b') {
                    Kind::Bytes
                } else {
                    Kind::Plain
                };
                let (v, ni, nl) = string_lit(&b, i, line, lower.contains('r'), kind)?;
                out.push((
                    match v {
                        _ if lower.contains('f') => Tok::Opaque("an f-string (computed)".into()),
                        Ok(v) => Tok::Str(v),
                        Err(why) => Tok::Opaque(why),
                    },
                    line,
                ));
                i = ni;
                line = nl;
            } else {
                out.push((Tok::Name(word), line));
            }
        } else if c == '\'' || c == '"' {
            let (v, ni, nl) = string_lit(&b, i, line, false, Kind::Plain)?;
            out.push((
                match v {
                    Ok(v) => Tok::Str(v),
                    Err(why) => Tok::Opaque(why),
                },
                line,
            ));
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

/// What kind of string literal: plain (`'...'`), `u'...'` or `b'...'`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    Unicode,
    Bytes,
}

/// A Python string literal starting at `b[i]` (a quote): its value, or
/// why ext3edit cannot tell it; the index after it and the line there.
fn string_lit(
    b: &[char],
    mut i: usize,
    mut line: usize,
    raw: bool,
    kind: Kind,
) -> Result<(std::result::Result<String, String>, usize, usize)> {
    let q = b[i];
    let start_line = line;
    let triple = b.get(i + 1) == Some(&q) && b.get(i + 2) == Some(&q);
    i += if triple { 3 } else { 1 };
    let mut v = String::new();
    let mut opaque: Option<String> = None;
    loop {
        let Some(&c) = b.get(i) else {
            return Err(Error::Invalid(format!(
                "line {start_line}: a string that never ends"
            )));
        };
        if triple {
            if c == q && b.get(i + 1) == Some(&q) && b.get(i + 2) == Some(&q) {
                return Ok((opaque.map_or(Ok(v), Err), i + 3, line));
            }
        } else if c == q {
            return Ok((opaque.map_or(Ok(v), Err), i + 1, line));
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
                if n == '\n' {
                    line += 1;
                }
                i += 2;
                continue;
            }
            i += 2;
            let simple = match n {
                '\n' => {
                    line += 1;
                    Some(None)
                }
                '\\' | '\'' | '"' => Some(Some(n)),
                'a' => Some(Some('\u{7}')),
                'b' => Some(Some('\u{8}')),
                'f' => Some(Some('\u{c}')),
                'n' => Some(Some('\n')),
                'r' => Some(Some('\r')),
                't' => Some(Some('\t')),
                'v' => Some(Some('\u{b}')),
                _ => None,
            };
            if let Some(ch) = simple {
                v.extend(ch);
                continue;
            }
            match n {
                '0'..='7' => {
                    // One to three octal digits.
                    let mut n8 = n.to_digit(8).unwrap_or(0);
                    let mut k = 0;
                    while k < 2 && b.get(i).is_some_and(|d| d.is_digit(8)) {
                        n8 = n8 * 8 + b[i].to_digit(8).unwrap_or(0);
                        i += 1;
                        k += 1;
                    }
                    v.extend(char::from_u32(n8));
                }
                'x' => {
                    let h: String = b.get(i..i + 2).unwrap_or(&[]).iter().collect();
                    match u32::from_str_radix(&h, 16)
                        .ok()
                        .filter(|_| h.len() == 2 && h.chars().all(|c| c.is_ascii_hexdigit()))
                    {
                        Some(x) => {
                            v.extend(char::from_u32(x));
                            i += 2;
                        }
                        None => {
                            return Err(Error::Invalid(format!(
                            "line {line}: a \\x escape without two hex digits (Python refuses it)"
                        )))
                        }
                    }
                }
                'u' | 'U' if kind == Kind::Unicode => {
                    let len = if n == 'u' { 4 } else { 8 };
                    let h: String = b.get(i..i + len).unwrap_or(&[]).iter().collect();
                    match u32::from_str_radix(&h, 16)
                        .ok()
                        .filter(|_| h.len() == len && h.chars().all(|c| c.is_ascii_hexdigit()))
                        .and_then(char::from_u32)
                    {
                        Some(ch) => {
                            v.push(ch);
                            i += len;
                        }
                        None => {
                            return Err(Error::Invalid(format!(
                                "line {line}: a \\{n} escape Python refuses"
                            )))
                        }
                    }
                }
                'u' | 'U' | 'N' if kind == Kind::Plain => {
                    opaque.get_or_insert(format!(
                        "\\{n} in a plain string (Python 2 keeps it, Python 3 decodes it)"
                    ));
                    v.push('\\');
                    v.push(n);
                }
                'N' if kind == Kind::Unicode => {
                    opaque.get_or_insert("\\N{...} (a Unicode character name)".into());
                    v.push('\\');
                    v.push(n);
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

/// What the configuration sets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Setting {
    /// The patterns, in order.
    pub patterns: Vec<Pattern>,
    /// True when the file assigns the setting at all.
    pub set: bool,
    /// The first thing that can change the setting in a way ext3edit does
    /// not evaluate: (line, what).
    pub undecided: Option<(usize, String)>,
}

/// Read the patterns of the setting from the configuration's text.
/// Only a string that never ends (a Python syntax error) is an error.
pub fn patterns(conf: &str) -> Result<Setting> {
    let toks = tokenize(conf)?;
    let mut st = Setting::default();
    let mut pats: Vec<Pattern> = Vec::new();
    let mut i = 0;
    let at_stmt_start = |i: usize| i == 0 || toks[i - 1].0 == Tok::Newline;
    let undecided = |st: &mut Setting, line: usize, why: String| {
        st.undecided.get_or_insert((line, why));
    };
    while i < toks.len() {
        let line = toks[i].1;
        match &toks[i].0 {
            Tok::Name(n)
                if n == "exec"
                    || n == "execfile"
                    || n == "setattr"
                    || n == "globals"
                    || n == "vars" =>
            {
                undecided(&mut st, line, format!("{n} can set any variable"));
            }
            Tok::Name(n) if n == "import" && toks.get(i + 1).is_some_and(|t| t.0 == Tok::Other) => {
                undecided(
                    &mut st,
                    line,
                    "from ... import * can set any variable".into(),
                );
            }
            Tok::Str(s) if s.contains(SETTING) => {
                undecided(&mut st, line, format!("{SETTING} named in a string"));
            }
            _ => {}
        }
        if toks[i].0 != Tok::Name(SETTING.into()) {
            i += 1;
            continue;
        }
        if !at_stmt_start(i) {
            let why = match i.checked_sub(1).map(|j| &toks[j].0) {
                Some(Tok::Indent) => {
                    format!("{SETTING} inside an indented block (if, for, def...)")
                }
                Some(Tok::Name(d)) if d == "del" => format!("del {SETTING}"),
                _ => format!("{SETTING} used in an expression or after another statement"),
            };
            undecided(&mut st, line, why);
            i += 1;
            continue;
        }
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
                    (Some(Tok::Name(m)), _) => {
                        undecided(&mut st, line, format!("{SETTING}.{m}"));
                        i += 1;
                        continue;
                    }
                    _ => {
                        undecided(&mut st, line, format!("{SETTING}."));
                        i += 1;
                        continue;
                    }
                }
            }
            Some(Tok::Op(o)) if o == "[" => {
                undecided(
                    &mut st,
                    line,
                    format!("{SETTING}[...] (item assignment or indexing)"),
                );
                i += 1;
                continue;
            }
            _ => {
                undecided(
                    &mut st,
                    line,
                    format!("{SETTING} used in a way ext3edit does not evaluate"),
                );
                i += 1;
                continue;
            }
        };
        st.set = true;
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
                Tok::Opaque(why) => undecided(&mut st, toks[j].1, why.clone()),
                _ => undecided(
                    &mut st,
                    line,
                    format!("{SETTING} is set to a computed value"),
                ),
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
    }
    st.patterns = pats;
    Ok(st)
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
    /// True when the file assigns the setting at all.
    pub set: bool,
    /// Why the answer cannot be told, when it cannot: (line, what); line 0
    /// when it is not one line.
    pub undecided: Option<(usize, String)>,
}

impl Verdict {
    /// True only when the URL is allowed for certain.
    pub fn allowed(&self) -> bool {
        self.matched.is_some() && self.undecided.is_none()
    }
}

/// Is `url` allowed by the configuration text `conf`?
pub fn allowed(conf: &str, url: &str) -> Result<Verdict> {
    let Setting {
        patterns,
        set,
        mut undecided,
    } = patterns(conf)?;
    let mut matched = None;
    let mut invalid = Vec::new();
    for p in &patterns {
        if let Some(why) = differs_from_python(&p.regex, url) {
            // Python reads this pattern otherwise (or refuses it): what
            // it decides before a match is found cannot be told here.
            if matched.is_none() && undecided.is_none() {
                undecided = Some((p.line, why));
            }
            continue;
        }
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
    if matched.is_none() && undecided.is_none() {
        // Python might match a pattern this regex engine cannot read.
        if let Some((l, e)) = invalid.first() {
            undecided = Some((*l, format!("a pattern ext3edit cannot read ({e})")));
        }
    }
    Ok(Verdict {
        matched,
        patterns,
        invalid,
        set,
        undecided,
    })
}

/// Why `re` (a Python regular expression) may not mean for `url` what
/// the Rust regex crate makes of it, or `None` when both read it alike.
/// Rust knows syntax Python takes literally or refuses (`[[:alpha:]]`,
/// `[a&&b]`, `\z`, `\pL`, `\<`, `(?<n>...)`, `(?U)`, flags after the
/// start), and Python's `$` also matches before a final newline.
fn differs_from_python(re: &str, url: &str) -> Option<String> {
    let b = re.as_bytes();
    let mut i = 0;
    let mut class = false;
    let why = |what: &str| {
        Some(format!(
            "pattern {re:?}: {what} means something else in Python"
        ))
    };
    while i < b.len() {
        let c = b[i];
        if c == b'\\' {
            let Some(&n) = b.get(i + 1) else {
                return why("a final backslash");
            };
            let same = match n {
                b'd' | b'D' | b'w' | b'W' | b's' | b'S' => url.is_ascii(),
                b'b' | b'B' | b'A' => !class && url.is_ascii(),
                b't' | b'n' | b'r' | b'f' | b'v' => true,
                b'x' => {
                    b.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
                        && b.get(i + 3).is_some_and(u8::is_ascii_hexdigit)
                }
                b'<' | b'>' => false,
                _ => n.is_ascii_punctuation(),
            };
            if !same {
                return why(&format!("\\{}", n as char));
            }
            i += 2;
            continue;
        }
        if class {
            if c == b'[' {
                return why("[ inside a character class");
            }
            if (c == b'&' || c == b'-' || c == b'~') && b.get(i + 1) == Some(&c) {
                return why(&format!("{0}{0} inside a character class", c as char));
            }
            if c == b']' {
                class = false;
            }
            i += 1;
            continue;
        }
        match c {
            b'[' => {
                class = true;
                i += 1;
                // A first ] (after an optional ^) is a literal in both.
                if b.get(i) == Some(&b'^') {
                    i += 1;
                }
                if b.get(i) == Some(&b']') {
                    i += 1;
                }
                continue;
            }
            b'(' if b.get(i + 1) == Some(&b'?') => {
                let rest = &re[i + 2..];
                let flags: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphabetic())
                    .collect();
                let ok = rest.starts_with(':')
                    || rest.starts_with("P<")
                    || (i == 0
                        && !flags.is_empty()
                        && flags.chars().all(|f| "ims".contains(f))
                        && rest[flags.len()..].starts_with(')')
                        && (url.is_ascii() || !flags.contains('i')));
                if !ok {
                    return why(&format!("(?{}", rest.chars().take(3).collect::<String>()));
                }
            }
            b'$' if url.contains('\n') => return why("$ with a newline in the URL"),
            _ => {}
        }
        i += 1;
    }
    None
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
        let p = patterns(CONF).unwrap().patterns;
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
    fn rust_only_regex_syntax_is_undecided() {
        // Each pattern "matches" in the Rust regex crate, but Python's re
        // reads it otherwise (no match) or refuses it.
        for (re, url) in [
            (r"http://e[[:alpha:]]", "http://ev"),
            (r"http://[a-z&&[^x]]+/", "http://evil/"),
            (r"http://evil\z", "http://evil"),
            (r"http://\pL", "http://e"),
            (r"http://(?<n>e)", "http://e"),
            (r"http://(?U)e+", "http://e"),
            (r"http://(?s).", "http://e"),
            (r"http://\x{65}", "http://e"),
            (r"http://e\<", "http://e<"),
            (r"http://good/x\.img$", "http://good/x.img\n"),
        ] {
            let conf = format!("AllowedFileSystemImageRegexs = [r'{re}']\n");
            let v = allowed(&conf, url).unwrap();
            assert!(
                v.undecided.is_some() && !v.allowed(),
                "{re:?} {url:?}: {v:?}"
            );
        }
        // What both read alike still decides.
        for re in [
            r"(?i)HTTP://E",
            r"http://e[]v]",
            r"http://ev\w+/?$",
            r"http://(?P<h>e)",
        ] {
            let conf = format!("AllowedFileSystemImageRegexs = [r'{re}']\n");
            assert!(allowed(&conf, "http://evil").unwrap().allowed(), "{re:?}");
        }
    }

    #[test]
    fn later_assignment_replaces() {
        let p = patterns(
            "AllowedFileSystemImageRegexs = ['a']\nAllowedFileSystemImageRegexs = ('b',)\n",
        )
        .unwrap()
        .patterns;
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].regex, "b");
    }

    #[test]
    fn what_is_not_evaluated_is_undecided() {
        let url = "http://ok.example/x";
        for (conf, line, what) in [
            ("AllowedFileSystemImageRegexs = base + ['x']\n", 1, "computed"),
            ("AllowedFileSystemImageRegexs = ['http://ok']\nif 0:\n    AllowedFileSystemImageRegexs = []\n", 3, "indented"),
            ("AllowedFileSystemImageRegexs = ['http://ok']\ndel AllowedFileSystemImageRegexs\n", 2, "del"),
            ("AllowedFileSystemImageRegexs = ['x']\nAllowedFileSystemImageRegexs[0] = 'http://ok'\n", 2, "item"),
            ("AllowedFileSystemImageRegexs = ['http://ok']\nAllowedFileSystemImageRegexs.remove('http://ok')\n", 2, "remove"),
            ("AllowedFileSystemImageRegexs = ['http://ok\\N{FULL STOP}']\n", 1, "\\N"),
            ("AllowedFileSystemImageRegexs = ['http://ok\\u002e']\n", 1, "Python 2"),
            ("a = 1; AllowedFileSystemImageRegexs = ['http://ok']\n", 1, "another statement"),
            ("globals()['AllowedFileSystemImageRegexs'] = []\nAllowedFileSystemImageRegexs = ['http://ok']\n", 1, "globals"),
        ] {
            let v = allowed(conf, url).unwrap();
            let (l, why) = v.undecided.clone().unwrap_or_else(|| panic!("{conf:?}: decided {v:?}"));
            assert_eq!(l, line, "{conf:?}: {why}");
            assert!(why.contains(what), "{conf:?}: {why}");
            assert!(!v.allowed(), "{conf:?}");
        }
        // The same configurations without the trap decide.
        let v = allowed(
            "AllowedFileSystemImageRegexs = ['http://ok']\nif 0:\n    x = 1\n",
            url,
        )
        .unwrap();
        assert!(v.allowed(), "{v:?}");
    }

    #[test]
    fn python_escapes() {
        let lit =
            |src: &str| patterns(&format!("AllowedFileSystemImageRegexs = [{src}]\n")).unwrap();
        let one = |src: &str| lit(src).patterns[0].regex.clone();
        assert_eq!(one(r#""a\bc""#), "a\u{8}c");
        assert_eq!(one(r#""\f\v\a\t\n\r""#), "\u{c}\u{b}\u{7}\t\n\r");
        assert_eq!(one(r#""\101\0\7""#), "A\0\u{7}");
        assert_eq!(one(r#""\x41\.\d""#), "A\\.\\d");
        assert_eq!(one(r#"u"\u00e9\U0001F600""#), "\u{e9}\u{1F600}");
        assert_eq!(one(r#"b"\u00e9""#), "\\u00e9");
        assert_eq!(one(r#"r"\b\x""#), "\\b\\x");
        assert_eq!(one(r#"'it\'s' "\"q\"""#), "it's\"q\"");
        assert!(patterns("AllowedFileSystemImageRegexs = ['\\x4']\n").is_err());
    }

    #[test]
    fn a_missing_setting_is_said() {
        let v = allowed("BankHostName = 'x'\n", "http://a/").unwrap();
        assert!(!v.set && v.patterns.is_empty() && !v.allowed());
        assert!(allowed(CONF, "ftp://mirror/a").unwrap().set);
    }
}
