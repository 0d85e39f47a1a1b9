//! Decoding a `gfp_mask` into the kernel's own flag names, for the running kernel.
//!
//! GFP bit values are not stable. In 4.9 `GFP_KERNEL` was 0x24000c0 (`___GFP_DIRECT_RECLAIM` was
//! 0x400000), in 6.1 it is 0xcc0; 6.1 has `__GFP_ATOMIC` at bit 9, this host's 6.18 has no bit 9
//! and adds `__GFP_NO_OBJ_EXT`; the order of the single bits in the table changed too, so 0x140dca
//! renders as `GFP_HIGHUSER_MOVABLE|__GFP_COMP|__GFP_ZERO` on 6.1 but
//! `GFP_HIGHUSER_MOVABLE|__GFP_ZERO|__GFP_COMP` on 6.18; and some flags are 0 or not depending on
//! the config (`CONFIG_LOCKDEP`, `CONFIG_KASAN_HW_TAGS`). A hard-coded table therefore names the
//! wrong flags on some kernel. The kernel publishes its own table instead: the `print fmt:` line of
//! `<tracefs>/events/kmem/mm_page_alloc/format` contains
//! `__print_flags(REC->gfp_flags, "|", {value, "NAME"}, ...)`, i.e. the `show_gfp_flags` table of
//! `include/trace/events/mmflags.h`, with every value written out as the preprocessed C expression
//! (`(( gfp_t)0x40u)`, `((((1UL))) << (10))`, `~`, `&`, `|`, casts).
//!
//! [`GfpTable::from_format`] parses that table with a tiny constant-expression evaluator,
//! [`GfpTable::builtin`] is a fallback copied from Linux 6.1, [`load`] picks one, and
//! [`GfpTable::decode`] renders a mask exactly like the kernel does (`__print_flags` in trace output,
//! `%pGg` in the OOM header `gfp_mask=0xcc0(GFP_KERNEL)`): entries in table order, composites first,
//! each emitted when all its bits are still set, then the leftover bits as one hex number.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Path of the `mm_page_alloc` event format file, relative to the tracefs root.
pub const MM_PAGE_ALLOC_FORMAT: &str = "events/kmem/mm_page_alloc/format";

/// Deepest parenthesis/unary nesting the evaluator accepts (the kernel's tables nest about 10 deep).
const MAX_DEPTH: usize = 128;

/// Why a GFP flag table could not be read from an event format.
#[derive(Debug, thiserror::Error)]
pub enum GfpError {
    /// The text has no `print fmt:` line.
    #[error("no `print fmt:` line in the event format")]
    NoPrintFmt,
    /// The `print fmt:` line has no `__print_flags(` call over `gfp_flags`.
    #[error("no `__print_flags(` call over gfp_flags in the print fmt")]
    NoPrintFlags,
    /// The `__print_flags` call could not be parsed or evaluated.
    #[error("malformed print fmt at byte {offset}: {reason}")]
    Syntax {
        /// Byte offset in the text given to [`GfpTable::from_format`].
        offset: usize,
        /// What was expected or went wrong.
        reason: String,
    },
    /// The `__print_flags` call names no flags.
    #[error("the __print_flags table has no entries")]
    EmptyTable,
    /// The format file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file that was read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// The kernel's ordered table of GFP flag names (`show_gfp_flags` / `gfpflag_names`).
///
/// Order matters: composite names (`GFP_TRANSHUGE`, `GFP_KERNEL`, ...) come first, so that a mask is
/// rendered with the largest matching composite and then the remaining single bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GfpTable {
    entries: Vec<(u64, String)>,
}

/// Fallback table: `__def_gfpflag_names` of Linux 6.1, `include/trace/events/mmflags.h`, with the
/// values of `include/linux/gfp_types.h` (6.1) for a build without `CONFIG_KASAN_HW_TAGS` and
/// without `CONFIG_LOCKDEP` (as x86-64 distribution kernels are built; `__GFP_SKIP_*` and
/// `__GFP_NOLOCKDEP` are then 0 and not listed). Values computed by running those two 6.1 headers
/// through the C preprocessor; the same blobs are in the 6.1-rc7 and 6.1.15 trees.
const BUILTIN_6_1: &[(u64, &str)] = &[
    (0x001c_24ca, "GFP_TRANSHUGE"),
    (0x001c_20ca, "GFP_TRANSHUGE_LIGHT"),
    (0x0010_0cca, "GFP_HIGHUSER_MOVABLE"),
    (0x0010_0cc2, "GFP_HIGHUSER"),
    (0x0010_0cc0, "GFP_USER"),
    (0x0040_0cc0, "GFP_KERNEL_ACCOUNT"),
    (0x0cc0, "GFP_KERNEL"),
    (0x0c40, "GFP_NOFS"),
    (0x0a20, "GFP_ATOMIC"),
    (0x0c00, "GFP_NOIO"),
    (0x0800, "GFP_NOWAIT"),
    (0x0001, "GFP_DMA"),
    (0x0002, "__GFP_HIGHMEM"),
    (0x0004, "GFP_DMA32"),
    (0x0020, "__GFP_HIGH"),
    (0x0200, "__GFP_ATOMIC"),
    (0x0040, "__GFP_IO"),
    (0x0080, "__GFP_FS"),
    (0x2000, "__GFP_NOWARN"),
    (0x4000, "__GFP_RETRY_MAYFAIL"),
    (0x8000, "__GFP_NOFAIL"),
    (0x0001_0000, "__GFP_NORETRY"),
    (0x0004_0000, "__GFP_COMP"),
    (0x0100, "__GFP_ZERO"),
    (0x0008_0000, "__GFP_NOMEMALLOC"),
    (0x0002_0000, "__GFP_MEMALLOC"),
    (0x0010_0000, "__GFP_HARDWALL"),
    (0x0020_0000, "__GFP_THISNODE"),
    (0x0010, "__GFP_RECLAIMABLE"),
    (0x0008, "__GFP_MOVABLE"),
    (0x0040_0000, "__GFP_ACCOUNT"),
    (0x1000, "__GFP_WRITE"),
    (0x0c00, "__GFP_RECLAIM"),
    (0x0400, "__GFP_DIRECT_RECLAIM"),
    (0x0800, "__GFP_KSWAPD_RECLAIM"),
    (0x0080_0000, "__GFP_ZEROTAGS"),
];

impl GfpTable {
    /// Parses the `__print_flags(REC->gfp_flags, "|", ...)` table out of an event format file
    /// (the whole file or just its `print fmt:` line), e.g. `events/kmem/mm_page_alloc/format`.
    ///
    /// Entry values are evaluated as C constant expressions: integer literals (hex, octal, decimal,
    /// with `u`/`l` suffixes), parentheses, casts (ignored: `( unsigned long)`, `(gfp_t)`,
    /// `(__force gfp_t)`), unary `~ - + !` and binary `* / % + - << >> & ^ |`, in 64-bit unsigned
    /// arithmetic. The table's terminator (`{ 0, ((void *)0) }` on recent kernels) ends the list.
    pub fn from_format(text: &str) -> Result<Self, GfpError> {
        let fmt_at = text.find("print fmt:").ok_or(GfpError::NoPrintFmt)?;
        let fmt_end = text[fmt_at..].find('\n').map_or(text.len(), |i| fmt_at + i);
        let mut search = fmt_at;
        // The gfp table is the `__print_flags` call whose first argument mentions gfp.
        loop {
            let Some(rel) = text[search..fmt_end].find("__print_flags(") else {
                return Err(GfpError::NoPrintFlags);
            };
            let call = search + rel;
            let open = call + "__print_flags".len();
            let tokens = tokenize(&text[open..fmt_end], open)?;
            let mut p = Parser {
                tokens: &tokens,
                pos: 0,
                end: fmt_end,
            };
            p.expect_punct("(")?;
            let first_arg = p.skip_argument()?;
            if first_arg.contains("gfp") {
                let entries = p.flag_list()?;
                if entries.is_empty() {
                    return Err(GfpError::EmptyTable);
                }
                return Ok(Self { entries });
            }
            search = open;
        }
    }

    /// Reads and parses a format file (see [`GfpTable::from_format`]).
    pub fn from_file(path: &Path) -> Result<Self, GfpError> {
        let text = fs::read_to_string(path).map_err(|source| GfpError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_format(&text)
    }

    /// The fallback table of Linux 6.1 (x86-64, no `CONFIG_KASAN_HW_TAGS`, no `CONFIG_LOCKDEP`).
    ///
    /// Wrong for other versions (6.18 has no bit 9 `__GFP_ATOMIC`, 4.x used other bit values), so
    /// prefer [`load`], which reads the running kernel's own table.
    pub fn builtin() -> Self {
        Self {
            entries: BUILTIN_6_1
                .iter()
                .map(|&(v, n)| (v, n.to_owned()))
                .collect(),
        }
    }

    /// The entries, in the kernel's order.
    pub fn entries(&self) -> &[(u64, String)] {
        &self.entries
    }

    /// The value of the flag (or composite) called `name`, if the table has it.
    pub fn value_of(&self, name: &str) -> Option<u64> {
        self.entries
            .iter()
            .find(|(_, n)| n == name)
            .map(|&(v, _)| v)
    }

    /// Splits `mask` into flag names the way the kernel's `__print_flags` / `%pGg` do: walk the
    /// entries in order; an entry whose value is non-zero and entirely contained in the bits not yet
    /// named is emitted and its bits cleared. Bits left over at the end are emitted as one lowercase
    /// hex number (`"0x100000"`). A zero mask gives an empty list (the OOM header prints
    /// `gfp_mask=0x0()`; the trace event prints `none`).
    pub fn decode(&self, mask: u64) -> Vec<String> {
        let mut rest = mask;
        let mut out = Vec::new();
        for (value, name) in &self.entries {
            if rest == 0 {
                break;
            }
            if *value != 0 && rest & value == *value {
                out.push(name.clone());
                rest &= !value;
            }
        }
        if rest != 0 {
            out.push(format!("{rest:#x}"));
        }
        out
    }

    /// [`GfpTable::decode`] joined with `|`, as in the kernel's `gfp_mask=0xcc0(GFP_KERNEL)`.
    pub fn format(&self, mask: u64) -> String {
        self.decode(mask).join("|")
    }
}

/// Loads the running kernel's GFP table from `<tracefs_root>/events/kmem/mm_page_alloc/format`,
/// falling back to [`GfpTable::builtin`] (logged at warn level) when it cannot be read or parsed.
/// Does not mount tracefs: pass the root of a mounted tracefs (`/sys/kernel/tracing`).
pub fn load(tracefs_root: &Path) -> GfpTable {
    let path = tracefs_root.join(MM_PAGE_ALLOC_FORMAT);
    match GfpTable::from_file(&path) {
        Ok(table) => {
            log::debug!(
                "gfp: {} flag names from {}",
                table.entries.len(),
                path.display()
            );
            table
        }
        Err(e) => {
            log::warn!(
                "gfp: {e}; decoding gfp masks with the built-in Linux 6.1 table, which may be wrong for this kernel"
            );
            GfpTable::builtin()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok<'a> {
    Ident(&'a str),
    Num(&'a str),
    /// A string literal, already unescaped.
    Str(String),
    Punct(&'static str),
    /// A character no flag value can contain (an error only if the parser reaches it).
    Other(char),
}

#[derive(Debug)]
struct Token<'a> {
    tok: Tok<'a>,
    /// Byte offset in the original text.
    at: usize,
}

const PUNCTS: &[&str] = &[
    "<<", ">>", "->", "&&", "||", "==", "!=", "<=", ">=", "(", ")", "{", "}", "[", "]", ",", "|",
    "&", "^", "~", "!", "+", "-", "*", "/", "%", "<", ">", "?", ":", ".",
];

fn syntax(offset: usize, reason: impl Into<String>) -> GfpError {
    GfpError::Syntax {
        offset,
        reason: reason.into(),
    }
}

/// Tokenizes `s`, which starts at byte `base` of the original text.
fn tokenize(s: &str, base: usize) -> Result<Vec<Token<'_>>, GfpError> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let first = bytes[i];
        if first.is_ascii_whitespace() {
            i += 1;
        } else if first.is_ascii_alphabetic() || first == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Ident(&s[start..i]),
                at: base + start,
            });
        } else if first.is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Num(&s[start..i]),
                at: base + start,
            });
        } else if first == b'"' {
            let start = i;
            i += 1;
            let mut value = String::new();
            loop {
                let Some(&byte) = bytes.get(i) else {
                    return Err(syntax(base + start, "unterminated string literal"));
                };
                match byte {
                    b'"' => {
                        i += 1;
                        break;
                    }
                    b'\\' => {
                        let Some(&escaped) = bytes.get(i + 1) else {
                            return Err(syntax(base + i, "unterminated escape"));
                        };
                        value.push(match escaped {
                            b'n' => '\n',
                            b't' => '\t',
                            other => char::from(other),
                        });
                        i += 2;
                    }
                    _ => {
                        // Copy one whole UTF-8 character.
                        let ch_len = s[i..].chars().next().map_or(1, char::len_utf8);
                        value.push_str(&s[i..i + ch_len]);
                        i += ch_len;
                    }
                }
            }
            out.push(Token {
                tok: Tok::Str(value),
                at: base + start,
            });
        } else if let Some(punct) = PUNCTS.iter().find(|q| s[i..].starts_with(**q)) {
            out.push(Token {
                tok: Tok::Punct(punct),
                at: base + i,
            });
            i += punct.len();
        } else {
            let ch = s[i..].chars().next().unwrap_or('?');
            out.push(Token {
                tok: Tok::Other(ch),
                at: base + i,
            });
            i += ch.len_utf8();
        }
    }
    Ok(out)
}

struct Parser<'t, 'a> {
    tokens: &'t [Token<'a>],
    pos: usize,
    /// Offset reported when the input ends early.
    end: usize,
}

impl<'t, 'a> Parser<'t, 'a> {
    fn peek(&self) -> Option<&'t Tok<'a>> {
        self.tokens.get(self.pos).map(|t| &t.tok)
    }

    fn peek_at(&self, n: usize) -> Option<&'t Tok<'a>> {
        self.tokens.get(self.pos + n).map(|t| &t.tok)
    }

    fn offset(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.end, |t| t.at)
    }

    fn is_punct(&self, p: &str) -> bool {
        matches!(self.peek(), Some(Tok::Punct(q)) if *q == p)
    }

    fn eat_punct(&mut self, p: &str) -> bool {
        if self.is_punct(p) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_punct(&mut self, p: &str) -> Result<(), GfpError> {
        if self.eat_punct(p) {
            Ok(())
        } else {
            Err(syntax(self.offset(), format!("expected `{p}`")))
        }
    }

    /// Skips one call argument (up to the top-level `,`, which is consumed) and returns its
    /// identifiers joined, so that the caller can tell what it is about.
    fn skip_argument(&mut self) -> Result<String, GfpError> {
        let mut depth = 0usize;
        let mut idents = String::new();
        loop {
            let Some(tok) = self.peek() else {
                return Err(syntax(self.end, "unterminated __print_flags argument"));
            };
            match tok {
                Tok::Punct("(" | "{" | "[") => depth += 1,
                Tok::Punct(")" | "}" | "]") => {
                    if depth == 0 {
                        return Err(syntax(self.offset(), "__print_flags has too few arguments"));
                    }
                    depth -= 1;
                }
                Tok::Punct(",") if depth == 0 => {
                    self.pos += 1;
                    return Ok(idents);
                }
                Tok::Ident(id) => {
                    idents.push_str(id);
                    idents.push(' ');
                }
                _ => {}
            }
            self.pos += 1;
        }
    }

    /// Parses `"delim", {expr, "NAME"}, ... )` after the first argument.
    fn flag_list(&mut self) -> Result<Vec<(u64, String)>, GfpError> {
        match self.peek() {
            Some(Tok::Str(_)) => self.pos += 1,
            _ => {
                return Err(syntax(
                    self.offset(),
                    "expected the delimiter string of __print_flags",
                ));
            }
        }
        let mut entries = Vec::new();
        loop {
            if self.eat_punct(")") {
                return Ok(entries);
            }
            self.expect_punct(",")?;
            if self.eat_punct(")") {
                return Ok(entries);
            }
            self.expect_punct("{")?;
            let value = self.expr(0)?;
            self.expect_punct(",")?;
            if let Some(Tok::Str(name)) = self.peek() {
                let name = name.clone();
                self.pos += 1;
                self.expect_punct("}")?;
                entries.push((value, name));
            } else {
                // `{ 0, ((void *)0) }` or `{ -1, NULL }`: the terminator.
                self.skip_to_closing_brace()?;
                self.expect_punct(")")?;
                return Ok(entries);
            }
        }
    }

    fn skip_to_closing_brace(&mut self) -> Result<(), GfpError> {
        let mut depth = 0usize;
        while let Some(tok) = self.peek() {
            self.pos += 1;
            match tok {
                Tok::Punct("(" | "{" | "[") => depth += 1,
                Tok::Punct(")" | "]") => depth = depth.saturating_sub(1),
                Tok::Punct("}") => {
                    if depth == 0 {
                        return Ok(());
                    }
                    depth -= 1;
                }
                _ => {}
            }
        }
        Err(syntax(self.end, "unterminated `{` in __print_flags"))
    }

    /// Precedence climbing over the C binary operators a flag value can use.
    fn expr(&mut self, depth: usize) -> Result<u64, GfpError> {
        self.binary(0, depth)
    }

    fn binary(&mut self, min_prec: u8, depth: usize) -> Result<u64, GfpError> {
        let mut lhs = self.unary(depth)?;
        while let Some(Tok::Punct(op)) = self.peek() {
            let op: &str = op;
            let Some(prec) = binary_precedence(op) else {
                break;
            };
            if prec < min_prec {
                break;
            }
            let at = self.offset();
            self.pos += 1;
            let rhs = self.binary(prec + 1, depth)?;
            lhs = apply_binary(op, lhs, rhs)
                .ok_or_else(|| syntax(at, format!("`{op}` overflows or divides by zero")))?;
        }
        Ok(lhs)
    }

    fn unary(&mut self, depth: usize) -> Result<u64, GfpError> {
        if depth > MAX_DEPTH {
            return Err(syntax(self.offset(), "expression nested too deeply"));
        }
        let at = self.offset();
        match self.peek() {
            Some(Tok::Punct("~")) => {
                self.pos += 1;
                Ok(!self.unary(depth + 1)?)
            }
            Some(Tok::Punct("-")) => {
                self.pos += 1;
                Ok(self.unary(depth + 1)?.wrapping_neg())
            }
            Some(Tok::Punct("+")) => {
                self.pos += 1;
                self.unary(depth + 1)
            }
            Some(Tok::Punct("!")) => {
                self.pos += 1;
                Ok(u64::from(self.unary(depth + 1)? == 0))
            }
            Some(Tok::Punct("(")) => {
                if let Some(after) = self.cast_end() {
                    // A cast: the type does not change a value that fits in 64 bits.
                    self.pos = after;
                    return self.unary(depth + 1);
                }
                self.pos += 1;
                let v = self.expr(depth + 1)?;
                self.expect_punct(")")?;
                Ok(v)
            }
            Some(Tok::Num(text)) => {
                let v = parse_int(text)
                    .ok_or_else(|| syntax(at, format!("bad integer literal `{text}`")))?;
                self.pos += 1;
                Ok(v)
            }
            Some(Tok::Ident(id)) => Err(syntax(
                at,
                format!("unknown identifier `{id}` in a flag value"),
            )),
            Some(Tok::Str(_)) => Err(syntax(at, "string where a flag value was expected")),
            Some(Tok::Punct(p)) => Err(syntax(at, format!("unexpected `{p}` in a flag value"))),
            Some(Tok::Other(c)) => Err(syntax(
                at,
                format!("unexpected character {c:?} in a flag value"),
            )),
            None => Err(syntax(at, "flag value cut short")),
        }
    }

    /// If a `(` at the current position opens a cast (`( unsigned long)`, `(__force gfp_t)`,
    /// `(void *)`), the position just after its `)`.
    fn cast_end(&self) -> Option<usize> {
        let mut n = 1;
        let mut idents = 0;
        loop {
            match self.peek_at(n)? {
                Tok::Ident(_) => idents += 1,
                Tok::Punct("*") if idents > 0 => {}
                Tok::Punct(")") if idents > 0 => return Some(self.pos + n + 1),
                _ => return None,
            }
            n += 1;
        }
    }
}

fn binary_precedence(op: &str) -> Option<u8> {
    Some(match op {
        "|" => 1,
        "^" => 2,
        "&" => 3,
        "<<" | ">>" => 4,
        "+" | "-" => 5,
        "*" | "/" | "%" => 6,
        _ => return None,
    })
}

fn apply_binary(op: &str, a: u64, b: u64) -> Option<u64> {
    match op {
        "|" => Some(a | b),
        "^" => Some(a ^ b),
        "&" => Some(a & b),
        "<<" => u32::try_from(b).ok().and_then(|s| a.checked_shl(s)),
        ">>" => u32::try_from(b).ok().and_then(|s| a.checked_shr(s)),
        "+" => Some(a.wrapping_add(b)),
        "-" => Some(a.wrapping_sub(b)),
        "*" => Some(a.wrapping_mul(b)),
        "/" => a.checked_div(b),
        "%" => a.checked_rem(b),
        _ => None,
    }
}

/// A C integer literal: `0x1fu`, `1UL`, `0755`, `42`, `0`.
fn parse_int(text: &str) -> Option<u64> {
    let digits = text.trim_end_matches(['u', 'U', 'l', 'L']);
    let suffix = &text[digits.len()..];
    if suffix.len() > 3 {
        return None;
    }
    if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        u64::from_str_radix(hex, 16).ok()
    } else if digits.len() > 1 && digits.starts_with('0') {
        u64::from_str_radix(&digits[1..], 8).ok()
    } else {
        digits.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST_FORMAT: &str = "/sys/kernel/tracing/events/kmem/mm_page_alloc/format";

    /// `events/kmem/mm_page_alloc/format` of Linux 6.1, reconstructed from source (this host runs
    /// 6.18, so it cannot be recorded here).
    ///
    /// Source: the v6.1 tree, read from the snapshots `github.com/TeddyNight/linux-6.1` (6.1.15) and
    /// `github.com/krr-io/linux-6.1.0` (6.1-rc7); the git blobs of every file used are identical in
    /// both. The field list is `TP_STRUCT__entry` of `TRACE_EVENT(mm_page_alloc)` in
    /// `include/trace/events/kmem.h` plus the 6.1 `struct trace_entry` common fields. The
    /// `print fmt` line is the output of `gcc -E` on that event's `TP_printk`, with the
    /// stringification of `include/trace/stages/stage7_class_define.h`
    /// (`TP_printk(fmt, args...)` → `"\"" fmt "\", " __stringify(args)`, `__entry` → `REC`), and
    /// `show_gfp_flags` / `__def_gfpflag_names` of `include/trace/events/mmflags.h` with the values
    /// of `include/linux/gfp_types.h`; x86-64, `__force` empty (no sparse),
    /// `CONFIG_KASAN_HW_TAGS=n`, `CONFIG_LOCKDEP=n`. The `ID:` line (a boot-time number) is left
    /// out.
    const FORMAT_6_1: &str = concat!(
        "name: mm_page_alloc\n",
        "format:\n",
        "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n",
        "\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n",
        "\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n",
        "\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n",
        "\n",
        "\tfield:unsigned long pfn;\toffset:8;\tsize:8;\tsigned:0;\n",
        "\tfield:unsigned int order;\toffset:16;\tsize:4;\tsigned:0;\n",
        "\tfield:unsigned long gfp_flags;\toffset:24;\tsize:8;\tsigned:0;\n",
        "\tfield:int migratetype;\toffset:32;\tsize:4;\tsigned:1;\n",
        "\n",
        r#"print fmt: "page=%p pfn=0x%lx order=%d migratetype=%d gfp_flags=%s", REC->pfn != -1UL ? (((struct page *)vmemmap_base) + (REC->pfn)) : ((void *)0), REC->pfn != -1UL ? REC->pfn : 0, REC->order, REC->migratetype, (REC->gfp_flags) ? __print_flags(REC->gfp_flags, "|", {( unsigned long)(((((((( gfp_t)(0x400u|0x800u)) | (( gfp_t)0x40u) | (( gfp_t)0x80u) | (( gfp_t)0x100000u)) | (( gfp_t)0x02u)) | (( gfp_t)0x08u) | (( gfp_t)0) | (( gfp_t)0)) | (( gfp_t)0x40000u) | (( gfp_t)0x80000u) | (( gfp_t)0x2000u)) & ~(( gfp_t)(0x400u|0x800u))) | (( gfp_t)0x400u)), "GFP_TRANSHUGE"}, {( unsigned long)((((((( gfp_t)(0x400u|0x800u)) | (( gfp_t)0x40u) | (( gfp_t)0x80u) | (( gfp_t)0x100000u)) | (( gfp_t)0x02u)) | (( gfp_t)0x08u) | (( gfp_t)0) | (( gfp_t)0)) | (( gfp_t)0x40000u) | (( gfp_t)0x80000u) | (( gfp_t)0x2000u)) & ~(( gfp_t)(0x400u|0x800u))), "GFP_TRANSHUGE_LIGHT"}, {( unsigned long)((((( gfp_t)(0x400u|0x800u)) | (( gfp_t)0x40u) | (( gfp_t)0x80u) | (( gfp_t)0x100000u)) | (( gfp_t)0x02u)) | (( gfp_t)0x08u) | (( gfp_t)0) | (( gfp_t)0)), "GFP_HIGHUSER_MOVABLE"}, {( unsigned long)(((( gfp_t)(0x400u|0x800u)) | (( gfp_t)0x40u) | (( gfp_t)0x80u) | (( gfp_t)0x100000u)) | (( gfp_t)0x02u)), "GFP_HIGHUSER"}, {( unsigned long)((( gfp_t)(0x400u|0x800u)) | (( gfp_t)0x40u) | (( gfp_t)0x80u) | (( gfp_t)0x100000u)), "GFP_USER"}, {( unsigned long)(((( gfp_t)(0x400u|0x800u)) | (( gfp_t)0x40u) | (( gfp_t)0x80u)) | (( gfp_t)0x400000u)), "GFP_KERNEL_ACCOUNT"}, {( unsigned long)((( gfp_t)(0x400u|0x800u)) | (( gfp_t)0x40u) | (( gfp_t)0x80u)), "GFP_KERNEL"}, {( unsigned long)((( gfp_t)(0x400u|0x800u)) | (( gfp_t)0x40u)), "GFP_NOFS"}, {( unsigned long)((( gfp_t)0x20u)|(( gfp_t)0x200u)|(( gfp_t)0x800u)), "GFP_ATOMIC"}, {( unsigned long)((( gfp_t)(0x400u|0x800u))), "GFP_NOIO"}, {( unsigned long)((( gfp_t)0x800u)), "GFP_NOWAIT"}, {( unsigned long)(( gfp_t)0x01u), "GFP_DMA"}, {( unsigned long)(( gfp_t)0x02u), "__GFP_HIGHMEM"}, {( unsigned long)(( gfp_t)0x04u), "GFP_DMA32"}, {( unsigned long)(( gfp_t)0x20u), "__GFP_HIGH"}, {( unsigned long)(( gfp_t)0x200u), "__GFP_ATOMIC"}, {( unsigned long)(( gfp_t)0x40u), "__GFP_IO"}, {( unsigned long)(( gfp_t)0x80u), "__GFP_FS"}, {( unsigned long)(( gfp_t)0x2000u), "__GFP_NOWARN"}, {( unsigned long)(( gfp_t)0x4000u), "__GFP_RETRY_MAYFAIL"}, {( unsigned long)(( gfp_t)0x8000u), "__GFP_NOFAIL"}, {( unsigned long)(( gfp_t)0x10000u), "__GFP_NORETRY"}, {( unsigned long)(( gfp_t)0x40000u), "__GFP_COMP"}, {( unsigned long)(( gfp_t)0x100u), "__GFP_ZERO"}, {( unsigned long)(( gfp_t)0x80000u), "__GFP_NOMEMALLOC"}, {( unsigned long)(( gfp_t)0x20000u), "__GFP_MEMALLOC"}, {( unsigned long)(( gfp_t)0x100000u), "__GFP_HARDWALL"}, {( unsigned long)(( gfp_t)0x200000u), "__GFP_THISNODE"}, {( unsigned long)(( gfp_t)0x10u), "__GFP_RECLAIMABLE"}, {( unsigned long)(( gfp_t)0x08u), "__GFP_MOVABLE"}, {( unsigned long)(( gfp_t)0x400000u), "__GFP_ACCOUNT"}, {( unsigned long)(( gfp_t)0x1000u), "__GFP_WRITE"}, {( unsigned long)(( gfp_t)(0x400u|0x800u)), "__GFP_RECLAIM"}, {( unsigned long)(( gfp_t)0x400u), "__GFP_DIRECT_RECLAIM"}, {( unsigned long)(( gfp_t)0x800u), "__GFP_KSWAPD_RECLAIM"}, {( unsigned long)(( gfp_t)0x800000u), "__GFP_ZEROTAGS"} ) : "none""#,
        "\n",
    );

    /// The OOM header recorded on the same host (memcg OOM, see the `source::kmsg_parse` tests): the
    /// kernel's `%pGg` rendering of the failed allocation's mask.
    const HOST_OOM_HEADER: &str =
        "python3 invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0";

    /// Reads this host's format file, mounting tracefs if needed. `None` (with a note) when it
    /// cannot be read, unless `CI=true`, where that is a failure.
    fn host_format() -> Option<String> {
        let path = Path::new(HOST_FORMAT);
        if !path.exists() {
            let _ = std::process::Command::new("mount")
                .args(["-t", "tracefs", "tracefs", "/sys/kernel/tracing"])
                .status();
        }
        match fs::read_to_string(path) {
            Ok(text) => Some(text),
            Err(e) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "cannot read {HOST_FORMAT} under CI: {e}"
                );
                eprintln!("skipping: cannot read {HOST_FORMAT}: {e}");
                None
            }
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn host_table_decodes_like_the_kernel() {
        let Some(text) = host_format() else { return };
        let table =
            GfpTable::from_format(&text).expect("this kernel's mm_page_alloc format parses");
        assert!(table.entries().len() > 20, "{table:?}");
        // The recorded OOM header of this host: gfp_mask=0xcc0(GFP_KERNEL).
        let flags = HOST_OOM_HEADER
            .split_once("gfp_mask=0xcc0(")
            .and_then(|(_, r)| r.split_once(')'))
            .unwrap()
            .0;
        assert_eq!(table.format(0xcc0), flags);
        assert_eq!(table.decode(0xcc0), names(&["GFP_KERNEL"]));
        // GFP_HIGHUSER_MOVABLE | __GFP_ZERO | __GFP_COMP (a zeroed anonymous/THP page): the single
        // bits come out in this kernel's table order (6.18 lists __GFP_ZERO before __GFP_COMP;
        // 6.1 the other way round, see `fixture_6_1`).
        let mut got = table.decode(0x0014_0dca);
        let pos = |n: &str| table.entries().iter().position(|(_, m)| m == n).unwrap();
        assert_eq!(got[0], "GFP_HIGHUSER_MOVABLE");
        assert!(pos(&got[1]) < pos(&got[2]), "{got:?} not in table order");
        got.sort();
        assert_eq!(
            got,
            names(&["GFP_HIGHUSER_MOVABLE", "__GFP_COMP", "__GFP_ZERO"])
        );
        // Every single flag of the table decodes to (at most) itself plus nothing else.
        for (value, name) in table.entries() {
            if value.is_power_of_two() && name.starts_with("__") {
                assert_eq!(table.decode(*value).len(), 1, "{name}");
            }
        }
        // The kernel's own rendering of masks is compared at run time in
        // tests/tests/oracles.rs (the OOM report header's `%pGg`), not with numbers of one build.
    }

    #[test]
    fn host_table_reports_unknown_bits_in_hex() {
        let Some(text) = host_format() else { return };
        let table = GfpTable::from_format(&text).unwrap();
        let known = table.entries().iter().fold(0u64, |acc, (v, _)| acc | v);
        assert!(known.leading_zeros() > 0, "{known:#x}");
        // The bit just above the highest one this kernel names.
        let unknown = 1u64 << (64 - known.leading_zeros());
        let got = table.decode(0xcc0 | unknown);
        assert_eq!(got, vec!["GFP_KERNEL".to_owned(), format!("{unknown:#x}")]);
    }

    #[test]
    fn fixture_6_1() {
        let table = GfpTable::from_format(FORMAT_6_1).unwrap();
        // Same values and order as the hand-copied fallback.
        assert_eq!(table, GfpTable::builtin());
        assert_eq!(table.entries().len(), 36);
        assert_eq!(table.value_of("GFP_TRANSHUGE"), Some(0x001c_24ca));
        assert_eq!(table.value_of("__GFP_ATOMIC"), Some(0x200));
        assert_eq!(table.decode(0xcc0), names(&["GFP_KERNEL"]));
        assert_eq!(
            table.decode(0x0014_0dca),
            names(&["GFP_HIGHUSER_MOVABLE", "__GFP_COMP", "__GFP_ZERO"])
        );
        // The 4.x/5.x-era OOM header example 0x100cca is GFP_HIGHUSER_MOVABLE in 6.1 too.
        assert_eq!(table.format(0x0010_0cca), "GFP_HIGHUSER_MOVABLE");
        // Bit 9 is __GFP_ATOMIC in 6.1 (removed in 6.4): GFP_ATOMIC = 0xa20.
        assert_eq!(table.decode(0xa20), names(&["GFP_ATOMIC"]));
        assert_eq!(
            table.decode(0x0cc0 | 0x0004_0000 | 0x2000),
            names(&["GFP_KERNEL", "__GFP_NOWARN", "__GFP_COMP"])
        );
    }

    #[test]
    fn unknown_bits_become_one_hex_number() {
        let table = GfpTable::builtin();
        assert_eq!(table.decode(0x0100_0000), names(&["0x1000000"]));
        assert_eq!(
            table.decode(0xcc0 | 0x0100_0000 | 0x8000_0000),
            names(&["GFP_KERNEL", "0x81000000"])
        );
        assert_eq!(table.format(0xcc0 | 0x0100_0000), "GFP_KERNEL|0x1000000");
        assert_eq!(table.decode(u64::MAX).last().unwrap(), "0xffffffffff000000");
    }

    #[test]
    fn zero_mask_is_empty() {
        assert!(GfpTable::builtin().decode(0).is_empty());
        assert_eq!(GfpTable::builtin().format(0), "");
    }

    #[test]
    fn zero_valued_entries_never_match() {
        let table = GfpTable::from_format(
            r#"print fmt: "%s", __print_flags(REC->gfp_flags, "|", {(unsigned long)((gfp_t)0), "__GFP_NOLOCKDEP"}, {(unsigned long)((gfp_t)0x40u), "__GFP_IO"})"#,
        )
        .unwrap();
        assert_eq!(table.entries().len(), 2);
        assert_eq!(table.decode(0x40), names(&["__GFP_IO"]));
        assert_eq!(table.decode(0x80), names(&["0x80"]));
    }

    #[test]
    fn evaluator_handles_the_c_forms_kernels_emit() {
        let cases: &[(&str, u64)] = &[
            (
                "(unsigned long)(((gfp_t)(0x400u|0x800u)) | ((gfp_t)0x40u) | ((gfp_t)0x80u))",
                0xcc0,
            ),
            ("( unsigned long)(( gfp_t)((((1UL))) << (10)))", 0x400),
            (
                "(__force unsigned long)((__force gfp_t)0x100000u)",
                0x0010_0000,
            ),
            ("((((1UL))) << (10)|((((1UL))) << (11)))", 0xc00),
            ("((0x1c2ccau) & ~((0x400u|0x800u))) | (0x400u)", 0x001c_24ca),
            ("1 + 2 * 3", 7),
            ("010", 8),
            ("0", 0),
            ("18446744073709551615ULL", u64::MAX),
            ("-1", u64::MAX),
            ("0x10 >> 4 ^ 3", 2),
        ];
        for (expr, want) in cases {
            let text =
                format!(r#"print fmt: "%s", __print_flags(REC->gfp_flags, "|", {{{expr}, "X"}})"#);
            let table = GfpTable::from_format(&text).unwrap_or_else(|e| panic!("{expr}: {e}"));
            assert_eq!(table.entries()[0].0, *want, "{expr}");
        }
    }

    #[test]
    fn malformed_print_fmt_is_a_typed_error() {
        let wrap =
            |body: &str| format!(r#"print fmt: "%s", __print_flags(REC->gfp_flags, "|", {body})"#);
        assert!(matches!(
            GfpTable::from_format("name: x\nformat:\n"),
            Err(GfpError::NoPrintFmt)
        ));
        assert!(matches!(
            GfpTable::from_format(r#"print fmt: "%d", REC->x"#),
            Err(GfpError::NoPrintFlags)
        ));
        // A __print_flags over another field is not the gfp table.
        assert!(matches!(
            GfpTable::from_format(r#"print fmt: "%s", __print_flags(REC->state, "|", {1, "A"})"#),
            Err(GfpError::NoPrintFlags)
        ));
        assert!(matches!(
            GfpTable::from_format(&wrap("{ 0, ((void *)0) }")),
            Err(GfpError::EmptyTable)
        ));
        for bad in [
            "{(unsigned long)(0x40u | ), \"A\"}",
            "{GFP_KERNEL, \"A\"}",
            "{(0x40u, \"A\"}",
            "{0x40q, \"A\"}",
            "{1 << 64, \"A\"}",
            "{1 / 0, \"A\"}",
            "{0x40u \"A\"}",
            "{0x40u, \"A\"",
            "{0x40u, \"A",
            "{0x40u, \"A\"} $",
        ] {
            let err = GfpTable::from_format(&wrap(bad)).expect_err(bad);
            assert!(matches!(err, GfpError::Syntax { .. }), "{bad}: {err:?}");
        }
        // Cut off in the middle.
        let cut = &FORMAT_6_1[..FORMAT_6_1.len() / 2];
        assert!(matches!(
            GfpTable::from_format(cut),
            Err(GfpError::Syntax { .. })
        ));
        // Nesting bomb.
        let deep = format!("{{{}1{}, \"A\"}}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(matches!(
            GfpTable::from_format(&wrap(&deep)),
            Err(GfpError::Syntax { .. })
        ));
    }

    #[test]
    fn load_falls_back_to_builtin() {
        let dir = std::env::temp_dir().join(format!("gfp-load-test-{}", std::process::id()));
        let fmt_dir = dir.join("events/kmem/mm_page_alloc");
        fs::create_dir_all(&fmt_dir).unwrap();
        // Missing file → builtin.
        let _ = fs::remove_file(fmt_dir.join("format"));
        assert_eq!(load(&dir), GfpTable::builtin());
        // Garbage → builtin.
        fs::write(
            fmt_dir.join("format"),
            "print fmt: \"%s\", __print_flags(REC->gfp_flags, \"|\", {oops",
        )
        .unwrap();
        assert_eq!(load(&dir), GfpTable::builtin());
        // A real (6.18-style, shifted-bit) table is used as is.
        fs::write(
            fmt_dir.join("format"),
            r#"print fmt: "gfp_flags=%s", (REC->gfp_flags) ? __print_flags(REC->gfp_flags, "|", {( unsigned long)(( gfp_t)((((1UL))) << (24))), "__GFP_NO_OBJ_EXT"}, { 0, ((void *)0) } ) : "none""#,
        )
        .unwrap();
        let t = load(&dir);
        assert_eq!(t.entries(), &[(0x0100_0000, "__GFP_NO_OBJ_EXT".to_owned())]);
        let _ = fs::remove_dir_all(&dir);
    }
}
