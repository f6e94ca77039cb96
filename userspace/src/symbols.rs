//! Address → name: code and static data addresses of a process resolved through
//! /proc/PID/maps and the ELF symbol tables of the mapped files; other addresses
//! named by their mapping (`[heap]`, `[stack]`, anonymous, file).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use object::{Object, ObjectSegment, ObjectSymbol, SymbolKind};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub offset: u64,
    pub perms: String,
    /// Path, or `[heap]`, `[stack]`, `[vdso]`, or empty for anonymous memory.
    pub name: String,
}

/// Parse /proc/PID/maps text.
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let range = f.next()?;
            let perms = f.next()?.to_string();
            let offset = u64::from_str_radix(f.next()?, 16).ok()?;
            let _dev = f.next()?;
            let _inode = f.next()?;
            let name = f.collect::<Vec<_>>().join(" ");
            let (lo, hi) = range.split_once('-')?;
            Some(Mapping {
                start: u64::from_str_radix(lo, 16).ok()?,
                end: u64::from_str_radix(hi, 16).ok()?,
                offset,
                perms,
                name,
            })
        })
        .collect()
}

#[derive(Debug, Clone)]
struct Sym {
    addr: u64,
    size: u64,
    name: String,
}

#[derive(Debug, Default)]
struct ElfInfo {
    /// (p_vaddr, p_offset, p_filesz) of loadable segments.
    segments: Vec<(u64, u64, u64)>,
    /// Sorted by address.
    /// One symbol per address (for resolving addresses), sorted.
    symbols: Vec<Sym>,
    /// Every name, aliases included (`free` and `__libc_free` share an address;
    /// a uprobe may name either).
    names: Vec<Sym>,
}

fn load_elf(path: &Path) -> Option<ElfInfo> {
    let data = std::fs::read(path).ok()?;
    let file = object::File::parse(&*data).ok()?;
    let segments = file
        .segments()
        .map(|s| {
            let (off, size) = s.file_range();
            (s.address(), off, size)
        })
        .collect();
    let mut symbols: Vec<Sym> = file
        .symbols()
        .chain(file.dynamic_symbols())
        .filter(|s| {
            matches!(
                s.kind(),
                SymbolKind::Text | SymbolKind::Data | SymbolKind::Tls
            ) && s.address() != 0
        })
        .filter_map(|s| {
            Some(Sym {
                addr: s.address(),
                size: s.size(),
                name: s.name().ok()?.to_string(),
            })
        })
        .collect();
    let names = symbols.clone();
    // Among aliases of one address, show the public name: fewest leading
    // underscores, then the shortest.
    symbols.sort_by_key(|s| {
        (
            s.addr,
            s.name.bytes().take_while(|&b| b == b'_').count(),
            s.name.len(),
        )
    });
    symbols.dedup_by_key(|s| s.addr);
    Some(ElfInfo {
        segments,
        symbols,
        names,
    })
}

/// What an address is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Resolved {
    /// Demangled symbol (+offset), if the address is inside one.
    pub symbol: Option<String>,
    /// `[heap]`, `[stack]`, `anonymous`, a file path, or `unmapped`.
    pub mapping: String,
}

impl Resolved {
    pub fn describe(&self) -> String {
        match &self.symbol {
            Some(s) => format!("{s} ({})", self.mapping),
            None => self.mapping.clone(),
        }
    }
}

/// Resolves addresses of one process (its maps are read once).
pub struct Symbolizer {
    maps: Vec<Mapping>,
    elves: HashMap<PathBuf, Option<ElfInfo>>,
    /// Where mapped files are read from (`/proc/PID/root` to see the target's view).
    root: PathBuf,
}

impl Symbolizer {
    pub fn for_pid(pid: u32) -> std::io::Result<Symbolizer> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
        Ok(Symbolizer::from_maps(
            parse_maps(&text),
            PathBuf::from(format!("/proc/{pid}/root")),
        ))
    }

    pub fn from_maps(maps: Vec<Mapping>, root: PathBuf) -> Symbolizer {
        Symbolizer {
            maps,
            elves: HashMap::new(),
            root,
        }
    }

    /// Load bias of a file mapping: runtime address minus ELF virtual address.
    fn bias(&mut self, m: &Mapping) -> Option<u64> {
        let path = self.root.join(m.name.trim_start_matches('/'));
        let info = self
            .elves
            .entry(path.clone())
            .or_insert_with(|| load_elf(&path))
            .as_ref()?;
        let page = 0xfffu64;
        // Two segments can share a page (R ends and R-X starts in it): the one whose
        // page-aligned start is this mapping's offset is the one mapped here.
        let seg = info
            .segments
            .iter()
            .find(|(_, off, _)| (*off & !page) == m.offset)
            .or_else(|| {
                info.segments
                    .iter()
                    .find(|(_, off, size)| *off <= m.offset && m.offset < off + size)
            })?;
        Some(
            m.start
                .wrapping_sub(seg.0.wrapping_sub(seg.1.wrapping_sub(m.offset))),
        )
    }

    pub fn resolve(&mut self, addr: u64) -> Resolved {
        let Some(idx) = self
            .maps
            .iter()
            .position(|m| m.start <= addr && addr < m.end)
        else {
            return Resolved {
                symbol: None,
                mapping: "unmapped".into(),
            };
        };
        let m = self.maps[idx].clone();
        // .bss past the file's end is an anonymous mapping right after the file's
        // last mapping: resolve it with that file's bias.
        let file_map = if m.name.starts_with('/') {
            Some(m.clone())
        } else if m.name.is_empty()
            && idx > 0
            && self.maps[idx - 1].end == m.start
            && self.maps[idx - 1].name.starts_with('/')
        {
            Some(self.maps[idx - 1].clone())
        } else {
            None
        };
        let mapping = if m.name.is_empty() {
            "anonymous".to_string()
        } else {
            m.name.clone()
        };
        let Some(fm) = file_map else {
            return Resolved {
                symbol: None,
                mapping,
            };
        };
        let symbol = self.bias(&fm).and_then(|bias| {
            let vaddr = addr.wrapping_sub(bias);
            let path = self.root.join(fm.name.trim_start_matches('/'));
            let info = self.elves.get(&path)?.as_ref()?;
            let i = info
                .symbols
                .partition_point(|s| s.addr <= vaddr)
                .checked_sub(1)?;
            let s = &info.symbols[i];
            let inside = vaddr < s.addr + s.size.max(1);
            inside.then(|| {
                let name = demangle(&s.name);
                match vaddr - s.addr {
                    0 => name,
                    off => format!("{name}+{off:#x}"),
                }
            })
        });
        Resolved {
            symbol,
            mapping: if file_map_is_bss(&m) {
                format!("{} (.bss)", fm.name)
            } else {
                mapping
            },
        }
    }

    /// The address of `symbol` (demangled name, exact or `::`-suffix match) in `path`'s
    /// ELF, as a file offset (what uprobes want).
    pub fn symbol_file_offset(path: &Path, symbol: &str) -> Result<u64, String> {
        let info =
            load_elf(path).ok_or_else(|| format!("{}: not a readable ELF file", path.display()))?;
        let mut matches: Vec<&Sym> = info
            .names
            .iter()
            .filter(|s| {
                // Versioned dynamic names (`free@@GLIBC_2.2.5`) match without the version.
                let unversioned = s.name.split('@').next().unwrap_or(&s.name);
                if unversioned == symbol {
                    return true;
                }
                let d = demangle(&s.name);
                // C++ names carry their parameter list: match with or without it.
                let bare = d.split('(').next().unwrap_or(&d);
                d == symbol
                    || bare == symbol
                    || s.name == symbol
                    || bare.ends_with(&format!("::{symbol}"))
            })
            .collect();
        // The same symbol in .symtab and .dynsym is one symbol.
        matches.sort_by_key(|s| s.addr);
        matches.dedup_by_key(|s| s.addr);
        let s = match matches.as_slice() {
            [] => return Err(format!("symbol {symbol:?} not found in {}", path.display())),
            [one] => *one,
            many => {
                // Prefer an exact match among several suffix matches.
                many.iter()
                    .find(|s| demangle(&s.name) == symbol)
                    .copied()
                    .ok_or_else(|| {
                        format!(
                            "symbol {symbol:?} is ambiguous in {} ({} matches)",
                            path.display(),
                            many.len()
                        )
                    })?
            }
        };
        info.segments
            .iter()
            .find(|(vaddr, _, size)| *vaddr <= s.addr && s.addr < vaddr + size)
            .map(|(vaddr, off, _)| s.addr - vaddr + off)
            .ok_or_else(|| format!("symbol {symbol:?} is not in a loadable segment"))
    }
}

fn file_map_is_bss(m: &Mapping) -> bool {
    m.name.is_empty()
}

/// Readable name of a mangled symbol: Rust (legacy and v0, hash dropped), then
/// C++ (Itanium ABI), else as is.
pub fn demangle(name: &str) -> String {
    if let Ok(d) = rustc_demangle::try_demangle(name) {
        return strip_hash(&d.to_string());
    }
    if name.starts_with("_Z") {
        if let Ok(sym) = cpp_demangle::Symbol::new(name) {
            if let Ok(s) = sym.demangle() {
                return s;
            }
        }
    }
    name.to_string()
}

/// Drop the `::h0123456789abcdef` hash legacy Rust mangling appends.
fn strip_hash(name: &str) -> String {
    match name.rfind("::h") {
        Some(i) if name.len() - i == 19 && name[i + 3..].chars().all(|c| c.is_ascii_hexdigit()) => {
            name[..i].to_string()
        }
        _ => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_maps_lines() {
        let m = parse_maps(
            "55d0c0a00000-55d0c0a21000 rw-p 00000000 00:00 0                          [heap]\n\
             7f00aa000000-7f00aa001000 r-xp 00002000 fd:01 1234                       /usr/lib/libfoo.so\n\
             7f00ab000000-7f00ab001000 rw-p 00000000 00:00 0 \n",
        );
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].name, "[heap]");
        assert_eq!(m[1].offset, 0x2000);
        assert_eq!(m[2].name, "");
    }

    #[test]
    fn demangles_rust_and_cpp() {
        assert_eq!(
            demangle("_ZN4core3fmt5write17h0123456789abcdefE"),
            "core::fmt::write"
        );
        assert_eq!(
            demangle("_ZN6engram5store6recallEPKfm"),
            "engram::store::recall(float const*, unsigned long)"
        );
        assert_eq!(demangle("plain_c_function"), "plain_c_function");
    }

    #[test]
    fn strips_legacy_hashes() {
        assert_eq!(strip_hash("foo::bar::h0123456789abcdef"), "foo::bar");
        assert_eq!(strip_hash("foo::bar"), "foo::bar");
    }

    #[cfg(target_os = "linux")]
    #[no_mangle]
    #[inline(never)]
    pub extern "C" fn hwprof_symbols_test_function() -> u64 {
        std::hint::black_box(7)
    }

    #[cfg(target_os = "linux")]
    pub static HWPROF_SYMBOLS_TEST_STATIC: std::sync::atomic::AtomicU64 =
        std::sync::atomic::AtomicU64::new(1);

    /// Resolve this test binary's own function and static through /proc/self/maps.
    #[cfg(target_os = "linux")]
    #[test]
    fn resolves_own_code_and_static_data() {
        let mut s = Symbolizer::for_pid(std::process::id()).unwrap();
        let f = s.resolve(hwprof_symbols_test_function as *const () as u64);
        assert_eq!(
            f.symbol.as_deref(),
            Some("hwprof_symbols_test_function"),
            "{f:?}"
        );
        let addr = &HWPROF_SYMBOLS_TEST_STATIC as *const _ as u64;
        let d = s.resolve(addr + 4);
        let sym = d.symbol.unwrap_or_default();
        assert!(sym.contains("HWPROF_SYMBOLS_TEST_STATIC+0x4"), "{sym}");
        let heap = Box::new(5u64);
        let h = s.resolve(&*heap as *const u64 as u64);
        // Test threads allocate from malloc arenas (anonymous mmaps), main from [heap].
        assert_eq!(h.symbol, None);
        assert!(h.mapping == "[heap]" || h.mapping == "anonymous", "{h:?}");
        assert_eq!(hwprof_symbols_test_function(), 7);
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let off = Symbolizer::symbol_file_offset(&exe, "hwprof_symbols_test_function").unwrap();
        assert!(off > 0);
    }
}
