//! The parser: recursive descent over the characters, each value checked against its
//! field's kind as it is read, so that an error can name the column where it starts.

use crate::ast::{Compare, Field, Kind, Match, Query, Value};
use std::net::IpAddr;
use stele_core::{Level, Timestamp};

/// Why a query is not one: `column` is 1-based, in characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ParseError {
    pub column: usize,
    pub message: String,
}

/// Longest query text accepted, in characters.
const MAX_CHARS: usize = 4_096;
/// Deepest nesting of parentheses and NOTs.
const MAX_DEPTH: usize = 32;

/// Parses `text` (blank: every event).
pub fn parse(text: &str) -> Result<Query, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() > MAX_CHARS {
        return Err(ParseError {
            column: MAX_CHARS + 1,
            message: format!("a query is at most {MAX_CHARS} characters"),
        });
    }
    let mut p = Parser {
        chars,
        at: 0,
        depth: 0,
    };
    p.skip_space();
    if p.done() {
        return Ok(Query::All);
    }
    let query = p.or()?;
    p.skip_space();
    if !p.done() {
        let what = if p.peek() == Some(')') {
            "a `)` without its `(`".to_string()
        } else {
            format!("unexpected `{}`", p.peek().unwrap_or(' '))
        };
        return Err(p.error(what));
    }
    Ok(query)
}

struct Parser {
    chars: Vec<char>,
    at: usize,
    depth: usize,
}

impl Parser {
    fn done(&self) -> bool {
        self.at >= self.chars.len()
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn error(&self, message: impl Into<String>) -> ParseError {
        self.error_at(self.at, message)
    }

    fn error_at(&self, at: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            column: at + 1,
            message: message.into(),
        }
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
    }

    /// The bare word starting here (up to a space, a parenthesis or a quote), without
    /// consuming it.
    fn word_ahead(&self) -> String {
        self.chars[self.at..]
            .iter()
            .take_while(|c| !c.is_whitespace() && !matches!(c, '(' | ')' | '"'))
            .collect()
    }

    /// Consumes `keyword` if it is the next word.
    fn keyword(&mut self, keyword: &str) -> bool {
        self.skip_space();
        if self.word_ahead() == keyword {
            self.at += keyword.chars().count();
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Query, ParseError> {
        let mut parts = vec![self.and()?];
        while self.keyword("OR") {
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().expect("one")
        } else {
            Query::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Query, ParseError> {
        let mut parts = vec![self.unary()?];
        loop {
            if self.keyword("AND") {
                parts.push(self.unary()?);
                continue;
            }
            self.skip_space();
            if self.done() || self.peek() == Some(')') || self.word_ahead() == "OR" {
                break;
            }
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().expect("one")
        } else {
            Query::And(parts)
        })
    }

    fn nested<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, ParseError>,
    ) -> Result<T, ParseError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error(format!("nested more than {MAX_DEPTH} deep")));
        }
        self.depth += 1;
        let result = f(self);
        self.depth -= 1;
        result
    }

    fn unary(&mut self) -> Result<Query, ParseError> {
        self.skip_space();
        if self.done() {
            return Err(self.error("a condition is missing at the end"));
        }
        if self.keyword("NOT") {
            return self.nested(|p| Ok(Query::Not(Box::new(p.unary()?))));
        }
        if self.peek() == Some('-')
            && self
                .chars
                .get(self.at + 1)
                .is_some_and(|c| !c.is_whitespace())
        {
            self.at += 1;
            return self.nested(|p| Ok(Query::Not(Box::new(p.unary()?))));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Query, ParseError> {
        match self.peek() {
            Some('(') => {
                let open = self.at;
                self.at += 1;
                let inner = self.nested(|p| p.or())?;
                self.skip_space();
                if self.peek() != Some(')') {
                    return Err(self.error_at(open, "this `(` is never closed"));
                }
                self.at += 1;
                Ok(inner)
            }
            Some(')') => Err(self.error("a `)` without its `(`")),
            Some('"') => {
                let phrase = self.phrase()?;
                Ok(text(&phrase, false))
            }
            _ => self.term(),
        }
    }

    /// A quoted phrase starting here.
    fn phrase(&mut self) -> Result<String, ParseError> {
        let open = self.at;
        self.at += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(self.error_at(open, "this quote is never closed")),
                Some('"') => {
                    self.at += 1;
                    return Ok(out);
                }
                Some('\\') => {
                    match self.chars.get(self.at + 1) {
                        Some(c @ ('"' | '\\')) => out.push(*c),
                        _ => return Err(self.error("only \\\" and \\\\ are escapes")),
                    }
                    self.at += 2;
                }
                Some(c) => {
                    out.push(c);
                    self.at += 1;
                }
            }
        }
    }

    /// `field:value`, or a bare word of free text.
    fn term(&mut self) -> Result<Query, ParseError> {
        let start = self.at;
        let word = self.word_ahead();
        if let Some((name, _)) = word.split_once(':')
            && !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.'))
            && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        {
            let field = Field::named(name).ok_or_else(|| {
                let known: Vec<&str> = Field::NAMED.iter().map(|(n, _)| *n).collect();
                self.error_at(
                    start,
                    format!(
                        "unknown field `{name}` (fields: {}, details.<path>)",
                        known.join(", ")
                    ),
                )
            })?;
            self.at += name.chars().count() + 1;
            let condition = self.value(&field)?;
            return Ok(Query::Field(field, condition));
        }
        if word.is_empty() {
            return Err(self.error(format!("unexpected `{}`", self.peek().unwrap_or(' '))));
        }
        self.at += word.chars().count();
        let (word, prefix) = match word.strip_suffix('*') {
            Some(stem) if !stem.is_empty() => (stem.to_string(), true),
            _ => (word, false),
        };
        let query = text(&word, prefix);
        match &query {
            Query::Text { words, .. } if words.is_empty() => {
                Err(self.error_at(start, format!("`{word}` has no word to search for")))
            }
            _ => Ok(query),
        }
    }

    /// The value after `field:`, checked against the field's kind.
    fn value(&mut self, field: &Field) -> Result<Match, ParseError> {
        let start = self.at;
        match self.peek() {
            Some('"') => {
                let phrase = self.phrase()?;
                return self.typed(field, &phrase, start).map(Match::Is);
            }
            Some('[' | '{') => return self.range(field),
            _ => {}
        }
        let word = self.word_ahead();
        if word.is_empty() {
            return Err(self.error(format!("`{}:` needs a value", field.name())));
        }
        self.at += word.chars().count();
        for (op, compare) in [
            (">=", Compare::Ge),
            ("<=", Compare::Le),
            (">", Compare::Gt),
            ("<", Compare::Lt),
        ] {
            if let Some(rest) = word.strip_prefix(op) {
                let at = start + op.len();
                if !ordered(field) {
                    return Err(
                        self.error_at(start, format!("`{}` has no order to compare", field.name()))
                    );
                }
                return Ok(Match::Compare(compare, self.typed(field, rest, at)?));
            }
        }
        if field.kind() == Kind::Ip
            && let Some((address, bits)) = word.split_once('/')
        {
            let ip: IpAddr = address
                .parse()
                .map_err(|_| self.error_at(start, format!("`{address}` is not an IP address")))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits: u8 = bits.parse().ok().filter(|b| *b <= max).ok_or_else(|| {
                self.error_at(start, format!("`/{bits}`: a block is /0 to /{max}"))
            })?;
            return Ok(Match::Cidr(ip, bits));
        }
        if let Some(stem) = word.strip_suffix('*')
            && !stem.is_empty()
        {
            return match field.kind() {
                Kind::Keyword | Kind::Any | Kind::Text => Ok(Match::Prefix(stem.to_string())),
                _ => Err(self.error_at(
                    start,
                    format!("`{}` cannot be matched by prefix", field.name()),
                )),
            };
        }
        if let Kind::Time = field.kind()
            && let Some(day) = day_of(&word)
        {
            // A date alone: that whole (UTC) day.
            let next = Timestamp::from_micros(day.as_micros() + 86_400_000_000).expect("in range");
            return Ok(Match::Range {
                from: Some((Value::Time(day), true)),
                to: Some((Value::Time(next), false)),
            });
        }
        self.typed(field, &word, start).map(Match::Is)
    }

    /// `[from TO to]`, `{from TO to}` or a mix; `*` leaves an end open.
    fn range(&mut self, field: &Field) -> Result<Match, ParseError> {
        let open = self.at;
        if !ordered(field) {
            return Err(self.error(format!("`{}` has no order for a range", field.name())));
        }
        let from_inclusive = self.peek() == Some('[');
        self.at += 1;
        self.skip_space();
        let from_at = self.at;
        let from = self.range_word();
        if !self.keyword("TO") {
            return Err(self.error("a range is `[from TO to]`"));
        }
        self.skip_space();
        let to_at = self.at;
        let to = self.range_word();
        self.skip_space();
        let to_inclusive = match self.peek() {
            Some(']') => true,
            Some('}') => false,
            _ => return Err(self.error_at(open, "this range is never closed with `]` or `}`")),
        };
        self.at += 1;
        let end = |p: &Self,
                   word: &str,
                   at: usize,
                   inclusive: bool,
                   upper: bool|
         -> Result<Option<(Value, bool)>, ParseError> {
            if word == "*" {
                return Ok(None);
            }
            if field.kind() == Kind::Time
                && let Some(day) = day_of(word)
            {
                // A date is the start of its day; an inclusive upper date takes in that day.
                if upper && inclusive {
                    let next =
                        Timestamp::from_micros(day.as_micros() + 86_400_000_000).expect("in range");
                    return Ok(Some((Value::Time(next), false)));
                }
                return Ok(Some((Value::Time(day), inclusive)));
            }
            Ok(Some((p.typed(field, word, at)?, inclusive)))
        };
        let from = end(self, &from, from_at, from_inclusive, false)?;
        let to = end(self, &to, to_at, to_inclusive, true)?;
        if from.is_none() && to.is_none() {
            return Err(self.error_at(open, "a range needs at least one end"));
        }
        Ok(Match::Range { from, to })
    }

    /// A word inside a range: up to a space or the closing bracket.
    fn range_word(&mut self) -> String {
        let word: String = self.chars[self.at..]
            .iter()
            .take_while(|c| !c.is_whitespace() && !matches!(c, ']' | '}'))
            .collect();
        self.at += word.chars().count();
        word
    }

    /// `text` as a value of `field`'s kind.
    fn typed(&self, field: &Field, text: &str, at: usize) -> Result<Value, ParseError> {
        let name = field.name();
        let bad = |what: &str| self.error_at(at, format!("`{name}` takes {what}, not `{text}`"));
        Ok(match field.kind() {
            Kind::Keyword | Kind::Text => Value::Str(text.to_string()),
            Kind::Enum(names) => {
                if !names.contains(&text) {
                    return Err(bad(&format!("one of {}", names.join(", "))));
                }
                Value::Str(text.to_string())
            }
            Kind::Level => Value::Level(
                Level::parse(text)
                    .ok_or_else(|| bad(&format!("a level ({})", Level::expected())))?,
            ),
            Kind::Number => {
                Value::Number(text.parse::<u64>().map_err(|_| bad("a whole number"))? as f64)
            }
            Kind::Time => {
                Value::Time(Timestamp::parse(text).map_err(|_| bad("an RFC 3339 time or a date"))?)
            }
            Kind::Ip => Value::Ip(
                text.parse()
                    .map_err(|_| bad("an IP address or a CIDR block"))?,
            ),
            Kind::Any => match text.parse::<f64>() {
                Ok(n) if n.is_finite() && !text.starts_with(['+', '.']) => Value::Number(n),
                _ => Value::Str(text.to_string()),
            },
        })
    }
}

/// Whether `field` has an order (numbers, times, levels, and details values).
fn ordered(field: &Field) -> bool {
    matches!(
        field.kind(),
        Kind::Number | Kind::Time | Kind::Level | Kind::Any
    )
}

/// `2026-01-31` as midnight UTC.
fn day_of(text: &str) -> Option<Timestamp> {
    if text.len() != 10 {
        return None;
    }
    Timestamp::parse(&format!("{text}T00:00:00Z")).ok()
}

/// Free text: its words, as the index splits them (letters and digits, lower case).
fn text(phrase: &str, prefix: bool) -> Query {
    Query::Text {
        words: crate::eval::words(phrase),
        prefix,
    }
}
