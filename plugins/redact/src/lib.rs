//! `redact`: removes or masks personal data at JSON pointers (with `*`
//! wildcards) before an event leaves the gateway.
//!
//! The logic is the pure function [`transform`], usable natively (tests,
//! benchmarks); the `component` module (wasm32 only) wires it to the
//! `hookgate:plugin/transformer` world.
//!
//! The gateway runs the plugin in a fresh sandbox for every delivery, so
//! the cost of one call is what counts. The envelope is therefore not
//! parsed into a `serde_json::Value` (a map per object, a string per value,
//! nearly all of it only to be printed again). Instead:
//!
//! 1. [`canonical`] checks in one pass that the envelope is JSON, refusing
//!    exactly what serde_json refuses, and gives the text serde_json would
//!    print for it (compact; numbers and escapes written its way). The
//!    gateway's envelopes already are that text: then nothing is copied.
//! 2. Only the objects and arrays a pointer goes through are split into
//!    members ([`Node`]); everything else stays a slice of that text.
//! 3. The body is written from those pieces.
//!
//! The result is what parsing, editing and printing with serde_json gives
//! (member order kept), except that duplicate member names are only
//! resolved in the objects a pointer goes through (see [`dedupe`]).

use std::borrow::Cow;

use serde_json::Value;

/// What the plugin decided for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver this body, with these extra headers and media type
    /// (`None`: `application/json`).
    Deliver {
        body: String,
        headers: Vec<(String, String)>,
        content_type: Option<String>,
    },
    /// Do not deliver; the reason ends up in the delivery log.
    Drop(String),
}

/// The default replacement of a masked value.
pub const DEFAULT_MASK: &str = "[REDACTED]";

/// What a masked string keeps in front of its last `keep_last` characters.
const PARTIAL_MASK: &str = "***";

/// One reference token of a pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// `*`: every element of an array, every member of an object.
    Any,
    /// A member name, or an array index when it is one.
    Key(String),
}

/// The configuration; see the README.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Config {
    remove: Vec<Vec<Segment>>,
    mask: Vec<Vec<Segment>>,
    mask_with: String,
    keep_last: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            remove: Vec::new(),
            mask: Vec::new(),
            mask_with: DEFAULT_MASK.to_owned(),
            keep_last: 0,
        }
    }
}

/// Parses an RFC 6901 pointer in which a `*` token is a wildcard. The empty
/// pointer (the whole document) is refused: `key` names the config key.
fn parse_pointer(key: &str, pointer: &str) -> Result<Vec<Segment>, String> {
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(format!(
            "config key `{key}`: {pointer:?} is not a JSON pointer to a member (it must start with `/`)"
        ));
    };
    rest.split('/')
        .map(|token| {
            if token == "*" {
                return Ok(Segment::Any);
            }
            let mut name = String::with_capacity(token.len());
            let mut chars = token.chars();
            while let Some(c) = chars.next() {
                if c != '~' {
                    name.push(c);
                    continue;
                }
                match chars.next() {
                    Some('0') => name.push('~'),
                    Some('1') => name.push('/'),
                    _ => {
                        return Err(format!(
                            "config key `{key}`: {pointer:?} has an invalid escape (`~` must be followed by 0 or 1)"
                        ));
                    }
                }
            }
            Ok(Segment::Key(name))
        })
        .collect()
}

fn parse_pointers(key: &str, value: Value) -> Result<Vec<Vec<Segment>>, String> {
    let Value::Array(items) = value else {
        return Err(format!(
            "config key `{key}` must be an array of JSON pointer strings"
        ));
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::String(pointer) => parse_pointer(key, &pointer),
            other => Err(format!(
                "config key `{key}` must be an array of JSON pointer strings, found {other}"
            )),
        })
        .collect()
}

fn parse_config(config: &str) -> Result<Config, String> {
    let mut parsed = Config::default();
    let config = config.trim();
    if config.is_empty() {
        return Ok(parsed);
    }
    let value: Value =
        serde_json::from_str(config).map_err(|e| format!("config is not valid JSON: {e}"))?;
    let Value::Object(map) = value else {
        return Err("config must be a JSON object".to_owned());
    };
    for (key, value) in map {
        match key.as_str() {
            "remove" => parsed.remove = parse_pointers("remove", value)?,
            "mask" => parsed.mask = parse_pointers("mask", value)?,
            "mask_with" => match value {
                Value::String(mask) => parsed.mask_with = mask,
                _ => return Err("config key `mask_with` must be a string".to_owned()),
            },
            "keep_last" => {
                parsed.keep_last = value
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or("config key `keep_last` must be a non-negative integer")?
            }
            other => {
                return Err(format!(
                    "unknown config key `{other}` (expected `remove`, `mask`, `mask_with`, `keep_last`)"
                ));
            }
        }
    }
    Ok(parsed)
}

/// An RFC 6901 array index: `0`, or digits without a leading zero.
fn array_index(token: &str) -> Option<usize> {
    let digits = token.bytes().all(|b| b.is_ascii_digit());
    if token.is_empty() || !digits || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    token.parse().ok()
}

/// serde_json refuses values nested deeper than this (its recursion limit).
const MAX_DEPTH: usize = 127;

/// The envelope as serde_json prints it once parsed: compact, with numbers
/// and string escapes written its way (but duplicate member names kept).
struct Canonical<'a> {
    text: Cow<'a, str>,
    /// Every object and array of `text`, in order.
    spans: Vec<Span>,
}

/// Where an object or array is in the canonical text: `start..end`; `next`
/// is the index of the first span after the ones inside it. Lets [`Doc`]
/// step over a nested value without reading it again.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    next: usize,
}

/// The envelope is not JSON; [`payload_error`] says why.
struct Invalid;

/// Checks that `input` is JSON, accepting exactly what serde_json does, and
/// makes it [`Canonical`] in the same pass. The gateway's envelopes are
/// already canonical (serde_json wrote them): then nothing is copied.
fn canonical(input: &str) -> Result<Canonical<'_>, Invalid> {
    let mut scan = Scanner {
        input,
        pos: 0,
        changed: false,
        out: String::new(),
        copied: 0,
        depth: 0,
        spans: Vec::new(),
    };
    scan.value()?;
    scan.whitespace();
    if scan.pos != input.len() {
        return Err(Invalid);
    }
    let text = if scan.changed {
        scan.out.push_str(&input[scan.copied..]);
        Cow::Owned(scan.out)
    } else {
        Cow::Borrowed(input)
    };
    Ok(Canonical {
        text,
        spans: scan.spans,
    })
}

/// The state of [`canonical`].
struct Scanner<'a> {
    input: &'a str,
    pos: usize,
    /// Whether the canonical text differs from the input; it is then `out`
    /// followed by `input[copied..]`.
    changed: bool,
    out: String,
    copied: usize,
    depth: usize,
    spans: Vec<Span>,
}

impl Scanner<'_> {
    /// Where input position `pos` (not yet copied) lands in the output.
    fn out_pos(&self, pos: usize) -> usize {
        self.out.len() + pos - self.copied
    }

    /// Puts `with` in place of `input[start..end]` in the output.
    fn replace(&mut self, start: usize, end: usize, with: &str) {
        if !self.changed {
            self.changed = true;
            self.out.reserve(self.input.len());
        }
        self.out.push_str(&self.input[self.copied..start]);
        self.out.push_str(with);
        self.copied = end;
    }

    fn peek(&self) -> Result<u8, Invalid> {
        self.input.as_bytes().get(self.pos).copied().ok_or(Invalid)
    }

    /// Skips (drops) whitespace.
    fn whitespace(&mut self) {
        let start = self.pos;
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.input.as_bytes().get(self.pos) {
            self.pos += 1;
        }
        if self.pos > start {
            self.replace(start, self.pos, "");
        }
    }

    fn value(&mut self) -> Result<(), Invalid> {
        self.whitespace();
        match self.peek()? {
            b'{' => self.container(b'}'),
            b'[' => self.container(b']'),
            b'"' => self.string(),
            b'-' | b'0'..=b'9' => self.number(),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            _ => Err(Invalid),
        }
    }

    /// An object (`close` is `}`) or an array (`]`).
    fn container(&mut self, close: u8) -> Result<(), Invalid> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Invalid);
        }
        let span = self.spans.len();
        self.spans.push(Span {
            start: self.out_pos(self.pos),
            end: 0,
            next: 0,
        });
        self.pos += 1;
        self.whitespace();
        if self.peek()? != close {
            loop {
                if close == b'}' {
                    if self.peek()? != b'"' {
                        return Err(Invalid);
                    }
                    self.string()?;
                    self.whitespace();
                    if self.peek()? != b':' {
                        return Err(Invalid);
                    }
                    self.pos += 1;
                }
                self.value()?;
                self.whitespace();
                match self.peek()? {
                    b',' => {
                        self.pos += 1;
                        self.whitespace();
                    }
                    b if b == close => break,
                    _ => return Err(Invalid),
                }
            }
        }
        self.pos += 1;
        self.spans[span].end = self.out_pos(self.pos);
        self.spans[span].next = self.spans.len();
        self.depth -= 1;
        Ok(())
    }

    fn string(&mut self) -> Result<(), Invalid> {
        let bytes = self.input.as_bytes();
        let start = self.pos;
        let mut i = start + 1;
        let mut escaped = false;
        loop {
            i = string_stop(bytes, i);
            match bytes.get(i) {
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    i += 2;
                }
                _ => return Err(Invalid),
            }
        }
        self.pos = i + 1;
        if escaped {
            // Rare: serde_json checks the escapes and writes them its way
            // (`\/` and `\u00e9` become `/` and `é`, for instance).
            let token = &self.input[start..self.pos];
            let text: String = serde_json::from_str(token).map_err(|_| Invalid)?;
            let canonical = serde_json::to_string(&text).map_err(|_| Invalid)?;
            if canonical != token {
                self.replace(start, self.pos, &canonical);
            }
        }
        Ok(())
    }

    fn number(&mut self) -> Result<(), Invalid> {
        let bytes = self.input.as_bytes();
        let start = self.pos;
        while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = bytes.get(self.pos) {
            self.pos += 1;
        }
        let token = &self.input[start..self.pos];
        let digits = token.strip_prefix('-').unwrap_or(token);
        // serde_json prints an integer that fits in 64 bits as it was
        // written (JSON has no `+` or leading zeros); `-0` is a float.
        let plain = !digits.is_empty()
            && digits.len() <= 18
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (!digits.starts_with('0') || token == "0");
        if !plain {
            // A float (or an error): serde_json parses it and prints it back
            // (`1E2` is `100.0`; `1e400` is out of range, an error).
            let number: serde_json::Number = serde_json::from_str(token).map_err(|_| Invalid)?;
            let canonical = serde_json::to_string(&number).map_err(|_| Invalid)?;
            if canonical != token {
                self.replace(start, self.pos, &canonical);
            }
        }
        Ok(())
    }

    fn literal(&mut self, word: &str) -> Result<(), Invalid> {
        if !self.input.as_bytes()[self.pos..].starts_with(word.as_bytes()) {
            return Err(Invalid);
        }
        self.pos += word.len();
        Ok(())
    }
}

/// The error for an envelope [`canonical`] refused: serde_json's message,
/// as when the whole envelope was parsed with it.
fn payload_error(envelope: &str) -> String {
    match serde_json::from_str::<Value>(envelope) {
        Err(e) => format!("payload is not valid JSON: {e}"),
        // Unreachable: `canonical` accepts exactly what serde_json does.
        Ok(_) => "payload is not valid JSON".to_owned(),
    }
}

/// The first `"`, `\` or control character at or after `i` (or the end).
/// Most of an envelope is the inside of strings: this reads it 8 bytes at a
/// time, with the `haszero`/`hasless` tricks of "Bit Twiddling Hacks"
/// (plain integer operations, in wasm too). Their lowest flagged byte is
/// always a real match (false ones can only follow a real one).
#[inline]
fn string_stop(bytes: &[u8], mut i: usize) -> usize {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = ONES * 0x80;
    while let Some(chunk) = bytes.get(i..).and_then(<[u8]>::first_chunk::<8>) {
        let word = u64::from_le_bytes(*chunk);
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        let stop = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (word.wrapping_sub(ONES * 0x20) & !word);
        if stop & HIGHS != 0 {
            return i + (stop & HIGHS).trailing_zeros() as usize / 8;
        }
        i += 8;
    }
    while let Some(&byte) = bytes.get(i) {
        if byte == b'"' || byte == b'\\' || byte < 0x20 {
            break;
        }
        i += 1;
    }
    i
}

/// Where the JSON string that starts at `i` (its `"`) ends, in valid JSON,
/// and whether it has escapes.
fn string_end(bytes: &[u8], mut i: usize) -> (usize, bool) {
    let mut escaped = false;
    i += 1;
    loop {
        i = string_stop(bytes, i);
        if bytes[i] == b'"' {
            return (i + 1, escaped);
        }
        escaped = true;
        i += 2;
    }
}

/// The text of a valid JSON string; borrowed when it has no escapes.
fn unescape(json: &str, escaped: bool) -> Cow<'_, str> {
    if escaped {
        Cow::Owned(serde_json::from_str(json).expect("checked by `canonical`"))
    } else {
        Cow::Borrowed(&json[1..json.len() - 1])
    }
}

/// A value of the document being redacted.
#[derive(Debug)]
enum Node<'a> {
    /// A string, number or literal: `text[start..end]`.
    Scalar(usize, usize),
    /// An object or array as it is in the text: `spans[i]`.
    Unsplit(usize),
    /// An object a pointer goes through, one member per name (see
    /// [`dedupe`]).
    Object(Vec<Member<'a>>),
    /// An array a pointer goes through.
    Array(Vec<Node<'a>>),
    /// A masked value: the JSON text of its replacement string.
    Masked(Cow<'a, str>),
}

#[derive(Debug)]
struct Member<'a> {
    /// The name, unescaped: what pointers are compared with.
    name: Cow<'a, str>,
    /// Where `"name":` is in the text: written back as it is.
    key: (usize, usize),
    value: Node<'a>,
}

/// Keeps one member per name, as serde_json does when it parses an object:
/// the last value, in the first one's place. So a pointer cannot miss a
/// duplicate (objects no pointer goes through are left as they are).
fn dedupe(members: &mut Vec<Member<'_>>) {
    let n = members.len();
    // Objects are small: compare every pair, without allocating.
    if n <= 16 && !(1..n).any(|i| members[..i].iter().any(|m| m.name == members[i].name)) {
        return;
    }
    let mut order: Vec<usize> = (0..n).collect();
    // Stable: the members of one name stay in document order.
    order.sort_by(|&a, &b| members[a].name.cmp(&members[b].name));
    let mut keep = vec![false; n];
    let mut moves = Vec::new();
    for same in order.chunk_by(|&a, &b| members[a].name == members[b].name) {
        keep[same[0]] = true;
        moves.push((same[0], same[same.len() - 1]));
    }
    for (first, last) in moves {
        // Same name, same canonical `"name":` text: the whole member moves.
        members.swap(first, last);
    }
    let mut keep = keep.into_iter();
    members.retain(|_| keep.next() == Some(true));
}

/// The canonical document, read in pieces.
struct Doc<'a> {
    text: &'a str,
    spans: &'a [Span],
    /// `mask_with` as a JSON string.
    mask_with: &'a str,
    keep_last: usize,
}

impl<'a> Doc<'a> {
    /// The value that starts at `i` and where it ends. `inner` is the index
    /// of the next span: that of the value if it is an object or an array.
    fn child(&self, i: usize, inner: &mut usize) -> (Node<'a>, usize) {
        let bytes = self.text.as_bytes();
        match bytes[i] {
            b'{' | b'[' => {
                let span = *inner;
                *inner = self.spans[span].next;
                (Node::Unsplit(span), self.spans[span].end)
            }
            b'"' => {
                let end = string_end(bytes, i).0;
                (Node::Scalar(i, end), end)
            }
            // A number or a literal.
            _ => {
                let end = bytes[i..]
                    .iter()
                    .position(|b| matches!(b, b',' | b']' | b'}'))
                    .map_or(bytes.len(), |n| i + n);
                (Node::Scalar(i, end), end)
            }
        }
    }

    /// Splits `node` into its members or elements if it is an unsplit
    /// object or array.
    fn split(&self, node: &mut Node<'a>) {
        let Node::Unsplit(span) = *node else {
            return;
        };
        let bytes = self.text.as_bytes();
        let start = self.spans[span].start;
        let mut inner = span + 1;
        let mut i = start + 1;
        if bytes[start] == b'{' {
            let mut members = Vec::new();
            while bytes[i] != b'}' {
                let (key_end, escaped) = string_end(bytes, i);
                let name = unescape(&self.text[i..key_end], escaped);
                let (value, end) = self.child(key_end + 1, &mut inner);
                members.push(Member {
                    name,
                    key: (i, key_end + 1),
                    value,
                });
                i = end + usize::from(bytes[end] == b',');
            }
            dedupe(&mut members);
            *node = Node::Object(members);
        } else {
            let mut items = Vec::new();
            while bytes[i] != b']' {
                let (item, end) = self.child(i, &mut inner);
                items.push(item);
                i = end + usize::from(bytes[end] == b',');
            }
            *node = Node::Array(items);
        }
    }

    /// Calls `f` on each child of `node` that `segment` selects; adds up
    /// what it returns.
    fn each_child(
        &self,
        node: &mut Node<'a>,
        segment: &Segment,
        mut f: impl FnMut(&mut Node<'a>) -> usize,
    ) -> usize {
        self.split(node);
        match (node, segment) {
            (Node::Object(members), Segment::Any) => {
                members.iter_mut().map(|member| f(&mut member.value)).sum()
            }
            (Node::Array(items), Segment::Any) => items.iter_mut().map(f).sum(),
            (Node::Object(members), Segment::Key(name)) => members
                .iter_mut()
                .find(|member| member.name == *name)
                .map_or(0, |member| f(&mut member.value)),
            (Node::Array(items), Segment::Key(token)) => array_index(token)
                .and_then(|i| items.get_mut(i))
                .map_or(0, f),
            _ => 0,
        }
    }

    /// Removes what `path` points to inside `node`; returns how many values.
    fn remove(&self, node: &mut Node<'a>, path: &[Segment]) -> usize {
        match path {
            [] => 0,
            [last] => {
                self.split(node);
                match (node, last) {
                    (Node::Object(members), Segment::Any) => std::mem::take(members).len(),
                    (Node::Array(items), Segment::Any) => std::mem::take(items).len(),
                    (Node::Object(members), Segment::Key(name)) => {
                        match members.iter().position(|member| member.name == *name) {
                            Some(i) => {
                                members.remove(i);
                                1
                            }
                            None => 0,
                        }
                    }
                    (Node::Array(items), Segment::Key(token)) => match array_index(token) {
                        Some(i) if i < items.len() => {
                            items.remove(i);
                            1
                        }
                        _ => 0,
                    },
                    _ => 0,
                }
            }
            [first, rest @ ..] => self.each_child(node, first, |child| self.remove(child, rest)),
        }
    }

    /// Masks what `path` points to inside `node`; returns how many values.
    fn mask(&self, node: &mut Node<'a>, path: &[Segment]) -> usize {
        match path {
            [] => {
                *node = Node::Masked(self.masked(node));
                1
            }
            [first, rest @ ..] => self.each_child(node, first, |child| self.mask(child, rest)),
        }
    }

    /// The replacement of one masked value, as JSON.
    fn masked(&self, node: &Node<'a>) -> Cow<'a, str> {
        let json = match node {
            Node::Scalar(start, end) if self.keep_last > 0 => &self.text[*start..*end],
            // Masked twice: the first mask is the string now.
            Node::Masked(json) if self.keep_last > 0 => json,
            _ => return Cow::Borrowed(self.mask_with),
        };
        if !json.starts_with('"') {
            return Cow::Borrowed(self.mask_with);
        }
        let text = unescape(json, json.contains('\\'));
        let count = text.chars().count();
        let masked = if count <= self.keep_last {
            // Keeping every character would mask nothing.
            PARTIAL_MASK.to_owned()
        } else {
            let tail: String = text.chars().skip(count - self.keep_last).collect();
            format!("{PARTIAL_MASK}{tail}")
        };
        Cow::Owned(Value::String(masked).to_string())
    }

    /// Appends `node` as compact JSON.
    fn write(&self, node: &Node<'a>, out: &mut String) {
        match node {
            Node::Scalar(start, end) => out.push_str(&self.text[*start..*end]),
            Node::Unsplit(span) => {
                let Span { start, end, .. } = self.spans[*span];
                out.push_str(&self.text[start..end]);
            }
            Node::Object(members) => {
                out.push('{');
                for (i, member) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let (key, _) = member.key;
                    match member.value {
                        // Untouched: `"name":value` is one piece of the text.
                        Node::Scalar(_, end) => out.push_str(&self.text[key..end]),
                        Node::Unsplit(span) => out.push_str(&self.text[key..self.spans[span].end]),
                        _ => {
                            out.push_str(&self.text[key..member.key.1]);
                            self.write(&member.value, out);
                        }
                    }
                }
                out.push('}');
            }
            Node::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.write(item, out);
                }
                out.push(']');
            }
            Node::Masked(json) => out.push_str(json),
        }
    }
}

/// The redacted body and how many values were removed and masked.
fn redact(envelope: &str, config: &str) -> Result<(String, usize, usize), String> {
    let config = parse_config(config)?;
    let Canonical { text, spans } =
        canonical(envelope).map_err(|Invalid| payload_error(envelope))?;
    if config.remove.is_empty() && config.mask.is_empty() {
        return Ok((text.into_owned(), 0, 0));
    }
    let mask_with = Value::from(config.mask_with.as_str()).to_string();
    let doc = Doc {
        text: &text,
        spans: &spans,
        mask_with: &mask_with,
        keep_last: config.keep_last,
    };
    let (mut root, _) = doc.child(0, &mut 0);
    let removed = config
        .remove
        .iter()
        .map(|path| doc.remove(&mut root, path))
        .sum();
    let masked = config
        .mask
        .iter()
        .map(|path| doc.mask(&mut root, path))
        .sum();
    let mut body = String::with_capacity(text.len());
    doc.write(&root, &mut body);
    Ok((body, removed, masked))
}

/// Redacts one event.
///
/// `envelope` is the JSON body about to be sent; `config` is the endpoint's
/// JSON configuration (`""` or `"{}"`: nothing to redact). Every `remove`
/// pointer is applied in order, then every `mask` pointer; paths that match
/// nothing are ignored. The result is always delivered, as compact JSON
/// with the member order kept, with no headers.
pub fn transform(envelope: &str, config: &str) -> Result<Verdict, String> {
    let (body, _, _) = redact(envelope, config)?;
    Ok(Verdict::Deliver {
        body,
        headers: Vec::new(),
        content_type: None,
    })
}

#[cfg(target_arch = "wasm32")]
// The generated export shim takes the flattened `event` record (14 values).
#[allow(clippy::too_many_arguments)]
mod component {
    wit_bindgen::generate!({ world: "transformer", path: "../../wit" });

    use hookgate::plugin::log::{Level, log};
    use hookgate::plugin::types::Delivery;

    struct Redact;

    impl Guest for Redact {
        fn transform(event: Event, config: String) -> Result<Outcome, String> {
            match super::redact(&event.payload, &config) {
                Ok((body, removed, masked)) => {
                    log(
                        Level::Debug,
                        &format!(
                            "redact: event {}: {removed} value(s) removed, {masked} masked",
                            event.id
                        ),
                    );
                    Ok(Outcome::Deliver(Delivery {
                        body,
                        headers: Vec::new(),
                        content_type: None,
                    }))
                }
                Err(error) => {
                    log(
                        Level::Debug,
                        &format!("redact: event {}: error: {error}", event.id),
                    );
                    Err(error)
                }
            }
        }
    }

    export!(Redact);
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOKING: &str = r#"{
  "id": "evt_01JD8Z3V4T",
  "type": "booking.created",
  "created_at": "2026-11-23T10:30:00Z",
  "data": {
    "booking_id": "bk_4821",
    "customer": {"name": "Ana Souza", "email": "ana.souza@example.com", "phone": "+351 912 345 678"},
    "travelers": [
      {"name": "Ana Souza", "passport": "P1234567"},
      {"name": "Rui Souza", "passport": "P7654321"}
    ],
    "card": {"last4": "4242", "number": 4242424242424242}
  }
}"#;

    fn body(envelope: &str, config: &str) -> String {
        match transform(envelope, config).unwrap() {
            Verdict::Deliver {
                body,
                headers,
                content_type,
            } => {
                assert!(headers.is_empty());
                assert_eq!(content_type, None);
                body
            }
            Verdict::Drop(reason) => panic!("unexpected drop: {reason}"),
        }
    }

    #[test]
    fn removes_and_masks_readme_example() {
        let config = r#"{"remove":["/data/customer/phone"],"mask":["/data/customer/email","/data/travelers/*/passport"]}"#;
        assert_eq!(
            body(BOOKING, config),
            r#"{"id":"evt_01JD8Z3V4T","type":"booking.created","created_at":"2026-11-23T10:30:00Z","data":{"booking_id":"bk_4821","customer":{"name":"Ana Souza","email":"[REDACTED]"},"travelers":[{"name":"Ana Souza","passport":"[REDACTED]"},{"name":"Rui Souza","passport":"[REDACTED]"}],"card":{"last4":"4242","number":4242424242424242}}}"#
        );
    }

    #[test]
    fn keep_last_and_mask_with_readme_example() {
        let config = r#"{"mask":["/data/travelers/*/passport","/data/card/number","/data/card/last4"],"mask_with":"<hidden>","keep_last":3}"#;
        assert_eq!(
            body(BOOKING, config),
            r#"{"id":"evt_01JD8Z3V4T","type":"booking.created","created_at":"2026-11-23T10:30:00Z","data":{"booking_id":"bk_4821","customer":{"name":"Ana Souza","email":"ana.souza@example.com","phone":"+351 912 345 678"},"travelers":[{"name":"Ana Souza","passport":"***567"},{"name":"Rui Souza","passport":"***321"}],"card":{"last4":"***242","number":"<hidden>"}}}"#
        );
    }

    #[test]
    fn default_config_only_compacts() {
        let compact = r#"{"id":"evt_01JD8Z3V4T","type":"booking.created","created_at":"2026-11-23T10:30:00Z","data":{"booking_id":"bk_4821","customer":{"name":"Ana Souza","email":"ana.souza@example.com","phone":"+351 912 345 678"},"travelers":[{"name":"Ana Souza","passport":"P1234567"},{"name":"Rui Souza","passport":"P7654321"}],"card":{"last4":"4242","number":4242424242424242}}}"#;
        assert_eq!(body(BOOKING, ""), compact);
        assert_eq!(body(BOOKING, "{}"), compact);
    }

    #[test]
    fn masks_any_json_type() {
        let event = r#"{"a":{"s":"x","n":1.5,"b":true,"z":null,"o":{"k":1},"l":[1,2]}}"#;
        let config = r##"{"mask":["/a/*"],"mask_with":"#"}"##;
        assert_eq!(
            body(event, config),
            r##"{"a":{"s":"#","n":"#","b":"#","z":"#","o":"#","l":"#"}}"##
        );
    }

    #[test]
    fn keep_last_counts_characters_and_never_reveals_short_strings() {
        let event = r#"{"a":"ñandú-1234","b":"abc","c":"abcd","d":7}"#;
        let config = r#"{"mask":["/a","/b","/c","/d"],"keep_last":4}"#;
        assert_eq!(
            body(event, config),
            r#"{"a":"***1234","b":"***","c":"***","d":"[REDACTED]"}"#
        );
        let config = r#"{"mask":["/a"],"keep_last":6}"#;
        assert_eq!(
            body(event, config),
            r#"{"a":"***ú-1234","b":"abc","c":"abcd","d":7}"#
        );
    }

    #[test]
    fn wildcards_cover_objects_arrays_and_nesting() {
        let event = r#"{"rooms":{"r1":{"guests":[{"email":"a@x"},{"email":"b@x","vip":true}]},"r2":{"guests":[]},"r3":5}}"#;
        let config = r#"{"remove":["/rooms/*/guests/*/vip"],"mask":["/rooms/*/guests/*/email"]}"#;
        assert_eq!(
            body(event, config),
            r#"{"rooms":{"r1":{"guests":[{"email":"[REDACTED]"},{"email":"[REDACTED]"}]},"r2":{"guests":[]},"r3":5}}"#
        );
        // A final `*` removes every member / element.
        let config = r#"{"remove":["/rooms/r1/guests/*","/rooms/*"]}"#;
        assert_eq!(body(event, config), r#"{"rooms":{}}"#);
        let config = r#"{"remove":["/rooms/r1/guests/*"]}"#;
        assert_eq!(
            body(event, config),
            r#"{"rooms":{"r1":{"guests":[]},"r2":{"guests":[]},"r3":5}}"#
        );
    }

    #[test]
    fn array_indexes_and_escapes() {
        let event = r#"{"l":["a","b","c"],"a/b":{"m~n":1,"0":2}}"#;
        // Pointers apply in order, like JSON Patch: after removing /l/0,
        // the old /l/2 is /l/1.
        let config =
            r#"{"remove":["/l/0","/l/1","/l/01","/l/-","/l/9"],"mask":["/a~1b/m~0n","/a~1b/0"]}"#;
        assert_eq!(
            body(event, config),
            r#"{"l":["b"],"a/b":{"m~n":"[REDACTED]","0":"[REDACTED]"}}"#
        );
    }

    #[test]
    fn absent_paths_are_ignored() {
        let config = r#"{"remove":["/data/nope","/data/customer/phone/deeper","/id/x","/data/travelers/7"],"mask":["/data/none/*","/data/travelers/*/visa","/type/0"]}"#;
        let expected = body(BOOKING, "");
        assert_eq!(body(BOOKING, config), expected);
        assert_eq!(redact(BOOKING, config).unwrap().1, 0);
        assert_eq!(redact(BOOKING, config).unwrap().2, 0);
    }

    #[test]
    fn remove_wins_over_mask() {
        let config = r#"{"mask":["/data/customer/*"],"remove":["/data/customer/phone"]}"#;
        let (body, removed, masked) = redact(BOOKING, config).unwrap();
        assert!(
            body.contains(r#""customer":{"name":"[REDACTED]","email":"[REDACTED]"}"#),
            "{body}"
        );
        assert_eq!((removed, masked), (1, 2));
    }

    #[test]
    fn bad_configs_are_errors() {
        for (config, needle) in [
            ("{", "config is not valid JSON"),
            ("[]", "config must be a JSON object"),
            (r#"{"remove":"/a"}"#, "`remove` must be an array"),
            (
                r#"{"mask":[1]}"#,
                "`mask` must be an array of JSON pointer strings, found 1",
            ),
            (r#"{"mask":[""]}"#, "`mask`: \"\" is not a JSON pointer"),
            (
                r#"{"remove":["a/b"]}"#,
                "`remove`: \"a/b\" is not a JSON pointer",
            ),
            (r#"{"remove":["/a~"]}"#, "invalid escape"),
            (r#"{"mask_with":null}"#, "`mask_with` must be a string"),
            (
                r#"{"keep_last":-1}"#,
                "`keep_last` must be a non-negative integer",
            ),
            (r#"{"keep_last":1.5}"#, "`keep_last`"),
            (r#"{"keep_last":"4"}"#, "`keep_last`"),
            (r#"{"masks":[]}"#, "unknown config key `masks`"),
        ] {
            let error = transform(BOOKING, config).unwrap_err();
            assert!(error.contains(needle), "{config}: {error}");
        }
    }

    #[test]
    fn bad_payloads_are_errors() {
        let error = transform("{\"a\":", "").unwrap_err();
        assert!(error.contains("payload is not valid JSON"), "{error}");
    }

    // What the text-level rewrite could get wrong, checked against what
    // parsing into a `serde_json::Value` and printing it gives.

    /// The body serde_json itself gives for `envelope` (nothing redacted).
    fn reprinted(envelope: &str) -> String {
        serde_json::from_str::<Value>(envelope).unwrap().to_string()
    }

    #[test]
    fn escaped_keys_match_their_unescaped_name() {
        let event = r#"{"ph\u006fne":"x","a\/b":{"m~n":1,"k":2},"q\"":"\"quoted\""}"#;
        let config = r#"{"remove":["/phone"],"mask":["/a~1b/m~0n","/q\""]}"#;
        assert_eq!(
            redact(event, config).unwrap(),
            (
                r#"{"a/b":{"m~n":"[REDACTED]","k":2},"q\"":"[REDACTED]"}"#.to_owned(),
                1,
                2
            )
        );
    }

    #[test]
    fn nested_wildcards() {
        let event = r#"{"a":[{"b":{"x":1,"y":2}},{"b":[{"x":3},5]},7],"c":{"d":{"x":4},"e":[]}}"#;
        let config = r#"{"mask":["/*/*/*/x","/*/*/b/*/x","/*/*/x"]}"#;
        assert_eq!(
            redact(event, config).unwrap(),
            (
                r#"{"a":[{"b":{"x":"[REDACTED]","y":2}},{"b":[{"x":"[REDACTED]"},5]},7],"c":{"d":{"x":"[REDACTED]"},"e":[]}}"#.to_owned(),
                0,
                3
            )
        );
        let config = r#"{"remove":["/*/*/b/*","/c/*/*"]}"#;
        assert_eq!(
            redact(event, config).unwrap(),
            (
                r#"{"a":[{"b":{}},{"b":[]},7],"c":{"d":{},"e":[]}}"#.to_owned(),
                5,
                0
            )
        );
    }

    #[test]
    fn remove_and_mask_on_the_same_path() {
        let config = r#"{"remove":["/data/customer/phone"],"mask":["/data/customer/phone"]}"#;
        let (body, removed, masked) = redact(BOOKING, config).unwrap();
        assert!(!body.contains("phone"), "{body}");
        assert_eq!((removed, masked), (1, 0));
        // Masking twice masks the first mask: with `keep_last`, its tail.
        let config = r#"{"mask":["/a","/a"],"keep_last":5}"#;
        assert_eq!(
            redact(r#"{"a":"ñandú-1234"}"#, config).unwrap(),
            (r#"{"a":"***-1234"}"#.to_owned(), 0, 2)
        );
        let config = r#"{"mask":["/a","/a"],"keep_last":2,"mask_with":"<hidden>"}"#;
        assert_eq!(
            redact(r#"{"a":7}"#, config).unwrap(),
            (r#"{"a":"***n>"}"#.to_owned(), 0, 2)
        );
    }

    #[test]
    fn pretty_input_is_compacted_but_not_inside_strings() {
        let event = "\r\n { \"a\" :\t[ 1 , \"x  y\\n\" , { } ] ,\n  \"b\" : { \"c\" : \" \" } } \n";
        let compact = r#"{"a":[1,"x  y\n",{}],"b":{"c":" "}}"#;
        assert_eq!(body(event, ""), compact);
        assert_eq!(body(event, r#"{"mask":["/nothing"]}"#), compact);
        assert_eq!(
            body(event, r#"{"mask":["/a/1"],"remove":["/b/c"]}"#),
            r#"{"a":[1,"[REDACTED]",{}],"b":{}}"#
        );
    }

    #[test]
    fn unicode_keys_and_values() {
        let event = r#"{"ключ":"значение","emoji":"\ud83d\ude00 ok 😀","é":{"ü":"ß"}}"#;
        let config = r#"{"mask":["/ключ","/emoji"],"keep_last":3}"#;
        assert_eq!(
            body(event, config),
            r#"{"ключ":"***ние","emoji":"***ok 😀"}"#.replace("ok 😀\"}", "k 😀\"")
                + r#","é":{"ü":"ß"}}"#
        );
        assert_eq!(
            body(event, r#"{"remove":["/é/ü"]}"#),
            r#"{"ключ":"значение","emoji":"😀 ok 😀","é":{}}"#
        );
    }

    #[test]
    fn numbers_and_escapes_are_written_as_serde_json_writes_them() {
        let event = r#"{"n":[1E2,-0,1.50,12345678901234567890,123456789012345678901,0.1,-7,1e-400],"s":"\u00e9\/\u001F\t\u2028\""}"#;
        let expected = r#"{"n":[100.0,-0.0,1.5,12345678901234567890,1.2345678901234567e+20,0.1,-7,0.0],"s":"é/\u001f\t\u{2028}\""}"#
            .replace("\\u{2028}", "\u{2028}");
        assert_eq!(body(event, ""), expected);
        assert_eq!(body(event, ""), reprinted(event));
        assert_eq!(body(event, r#"{"mask":["/n/9"]}"#), expected);
        assert_eq!(
            body(event, r#"{"mask":["/n/0"]}"#),
            expected.replace("100.0", "\"[REDACTED]\"")
        );
    }

    #[test]
    fn duplicate_members() {
        // Where a pointer goes, the last value wins, in the first one's
        // place (as serde_json's map did): no duplicate escapes a pointer.
        let event = r#"{"p":"xx","a":1,"p":"yz","o":{"k":1,"k":2}}"#;
        assert_eq!(
            redact(event, r#"{"remove":["/p"]}"#).unwrap(),
            (r#"{"a":1,"o":{"k":1,"k":2}}"#.to_owned(), 1, 0)
        );
        assert_eq!(
            redact(event, r#"{"mask":["/p"],"keep_last":1}"#).unwrap(),
            (r#"{"p":"***z","a":1,"o":{"k":1,"k":2}}"#.to_owned(), 0, 1)
        );
        assert_eq!(
            redact(event, r#"{"mask":["/*"]}"#).unwrap().2,
            3,
            "one per name"
        );
        // Elsewhere the text is passed on as it is.
        assert_eq!(body(event, ""), event);
        assert_eq!(
            body(event, r#"{"remove":["/o/k"]}"#),
            r#"{"p":"yz","a":1,"o":{}}"#
        );
        // Large objects take another path.
        let members: Vec<String> = (0..40).map(|i| format!(r#""k{}":{i}"#, i % 25)).collect();
        let event = format!("{{{}}}", members.join(","));
        let (body, removed, _) = redact(&event, r#"{"remove":["/k3"]}"#).unwrap();
        let expected: Value = serde_json::from_str(&event).unwrap();
        let mut expected = expected.as_object().unwrap().clone();
        expected.shift_remove("k3");
        assert_eq!(body, Value::Object(expected).to_string());
        assert_eq!(removed, 1);
    }

    #[test]
    fn valid_payloads_of_every_shape() {
        let deep = format!("{}{}", "[".repeat(127), "]".repeat(127));
        let deep_objects = format!("{}1{}", r#"{"a":"#.repeat(127), "}".repeat(127));
        for event in [
            r#""just a string""#,
            " 5 ",
            "-1.5e3",
            "true",
            "null",
            "[]",
            "{}",
            r#"[{"a":[]},{},[[]],"x",0]"#,
            &deep,
            &deep_objects,
        ] {
            assert_eq!(body(event, ""), reprinted(event), "{event}");
            assert_eq!(
                body(event, r#"{"remove":["/a","/0/a"],"mask":["/1"]}"#),
                redact_old_way(event),
                "{event}"
            );
        }
    }

    /// What `{"remove":["/a","/0/a"],"mask":["/1"]}` does, on a `Value`.
    fn redact_old_way(event: &str) -> String {
        let mut value: Value = serde_json::from_str(event).unwrap();
        if let Some(map) = value.as_object_mut() {
            map.shift_remove("a");
        }
        if let Some(Value::Object(map)) = value.get_mut(0) {
            map.shift_remove("a");
        }
        match &mut value {
            Value::Object(map) => {
                if let Some(v) = map.get_mut("1") {
                    *v = Value::from(DEFAULT_MASK);
                }
            }
            Value::Array(items) => {
                if let Some(v) = items.get_mut(1) {
                    *v = Value::from(DEFAULT_MASK);
                }
            }
            _ => {}
        }
        value.to_string()
    }

    #[test]
    fn payload_errors_are_serde_jsons() {
        let too_deep = format!("{}{}", "[".repeat(128), "]".repeat(128));
        let too_deep_objects = format!("{}1{}", r#"{"a":"#.repeat(128), "}".repeat(128));
        for event in [
            "",
            "  ",
            "{",
            "[1,]",
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            "{1:2}",
            "[01]",
            "[-]",
            "[1.]",
            "[.5]",
            "[+1]",
            "[1e]",
            "tru",
            "nul",
            "[1 2]",
            "1 2",
            "[1]]",
            "NaN",
            r#""\q""#,
            r#"["\u12"]"#,
            r#""\ud800""#,
            r#""\udc00""#,
            r#""\ud800\u0041""#,
            "\"a\u{1}b\"",
            "\"a\tb\"",
            "[1e400]",
            "-1e400",
            "\u{feff}{}",
            "\"abc",
            &too_deep,
            &too_deep_objects,
        ] {
            let expected = serde_json::from_str::<Value>(event).unwrap_err();
            for config in ["", r#"{"mask":["/0","/a"]}"#] {
                assert_eq!(
                    transform(event, config).unwrap_err(),
                    format!("payload is not valid JSON: {expected}"),
                    "{event:?}"
                );
            }
        }
        // Every truncation of an envelope is an error.
        let compact = body(BOOKING, "");
        let config = r#"{"remove":["/data/customer/phone"],"mask":["/data/travelers/*/passport"]}"#;
        for end in (0..compact.len()).filter(|&end| compact.is_char_boundary(end)) {
            let error = transform(&compact[..end], config).unwrap_err();
            assert!(error.starts_with("payload is not valid JSON: "), "{error}");
        }
    }
}
