//! A small reader of the `.BTF` section clang writes into a BPF object: just
//! what the contract test compares (struct sizes, members, array shapes,
//! integer encodings, enumerators). aya-obj parses BTF too, but keeps its
//! type accessors crate-private.
//!
//! Format: Documentation/bpf/btf.rst (the kernel's `struct btf_header`,
//! `struct btf_type` and the per-kind data that follows each type).

use object::{Object as _, ObjectSection as _};

/// What a type is, with typedefs and qualifiers resolved away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shape {
    /// An integer: size in bytes and signedness. C `char` is [`Shape::Char`].
    Int {
        size: usize,
        signed: bool,
    },
    /// C `char`: a byte of text, whatever its signedness.
    Char,
    /// `n` elements of a shape.
    Array(Box<Shape>, usize),
    Ptr,
    Struct(String),
    Union(String),
    Enum(String),
    Other(u32),
}

#[derive(Clone, Debug)]
pub struct Member {
    pub name: String,
    /// Byte offset (a bitfield has none: the contract has no bitfields).
    pub offset: Option<usize>,
    pub type_id: u32,
}

#[derive(Clone, Debug)]
pub struct Composite {
    pub name: String,
    pub size: usize,
    pub members: Vec<Member>,
}

#[derive(Clone, Debug)]
pub struct Enum {
    pub name: String,
    pub size: usize,
    pub values: Vec<(String, i64)>,
}

#[derive(Clone, Debug)]
enum Type {
    Void,
    Int {
        name: String,
        size: usize,
        encoding: u32,
    },
    Ptr,
    Array {
        elem: u32,
        n: usize,
    },
    Struct(Composite),
    Union(Composite),
    Enum(Enum),
    /// typedef, volatile, const, restrict, type tag: the type it names.
    Alias(u32),
    Float {
        size: usize,
    },
    /// Functions, variables, sections, forward declarations.
    Other,
}

pub struct Btf {
    types: Vec<Type>,
}

const BTF_MAGIC: u16 = 0xeb9f;
const BTF_INT_SIGNED: u32 = 1 << 0;
const BTF_INT_CHAR: u32 = 1 << 1;

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn u32(&mut self) -> Result<u32, String> {
        let b = self
            .data
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| format!("BTF truncated at byte {}", self.pos))?;
        self.pos += 4;
        Ok(u32::from_le_bytes(b.try_into().unwrap()))
    }
}

impl Btf {
    /// The BTF of a little-endian BPF ELF object.
    pub fn from_elf(elf: &[u8]) -> Result<Self, String> {
        let file = object::File::parse(elf).map_err(|e| format!("not an ELF object: {e}"))?;
        let section = file
            .section_by_name(".BTF")
            .ok_or("the object has no .BTF section (compiled without -g?)")?;
        let data = section.data().map_err(|e| format!(".BTF: {e}"))?;
        Self::parse(data)
    }

    pub fn parse(data: &[u8]) -> Result<Self, String> {
        let magic = u16::from_le_bytes(data.get(..2).ok_or("empty BTF")?.try_into().unwrap());
        if magic != BTF_MAGIC {
            return Err(format!(
                "BTF magic {magic:#x}, expected {BTF_MAGIC:#x} (little endian)"
            ));
        }
        let mut h = Reader { data, pos: 4 };
        let hdr_len = h.u32()? as usize;
        let (type_off, type_len) = (h.u32()? as usize, h.u32()? as usize);
        let (str_off, str_len) = (h.u32()? as usize, h.u32()? as usize);
        let body = data.get(hdr_len..).ok_or("BTF header too long")?;
        let strings = body
            .get(str_off..str_off + str_len)
            .ok_or("BTF string section out of bounds")?;
        let string = |off: u32| -> Result<String, String> {
            let s = strings
                .get(off as usize..)
                .ok_or("BTF name offset out of bounds")?;
            let end = s
                .iter()
                .position(|&b| b == 0)
                .ok_or("unterminated BTF string")?;
            Ok(String::from_utf8_lossy(&s[..end]).into_owned())
        };
        let types_data = body
            .get(type_off..type_off + type_len)
            .ok_or("BTF type section out of bounds")?;
        let mut r = Reader {
            data: types_data,
            pos: 0,
        };
        let mut types = vec![Type::Void];
        while r.pos < types_data.len() {
            let name = string(r.u32()?)?;
            let info = r.u32()?;
            let size_or_type = r.u32()?;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            let ty = match kind {
                1 => {
                    let int = r.u32()?;
                    Type::Int {
                        name,
                        size: size_or_type as usize,
                        encoding: (int >> 24) & 0xf,
                    }
                }
                2 => Type::Ptr,
                3 => {
                    let elem = r.u32()?;
                    let _index = r.u32()?;
                    Type::Array {
                        elem,
                        n: r.u32()? as usize,
                    }
                }
                4 | 5 => {
                    let mut members = Vec::with_capacity(vlen);
                    for _ in 0..vlen {
                        let name = string(r.u32()?)?;
                        let type_id = r.u32()?;
                        let off = r.u32()?;
                        // With kind_flag, the high 8 bits are a bitfield size.
                        let (bits, bitfield) = if kind_flag {
                            (off & 0xff_ffff, off >> 24)
                        } else {
                            (off, 0)
                        };
                        let offset = (bitfield == 0 && bits % 8 == 0).then_some(bits as usize / 8);
                        members.push(Member {
                            name,
                            offset,
                            type_id,
                        });
                    }
                    let c = Composite {
                        name,
                        size: size_or_type as usize,
                        members,
                    };
                    if kind == 4 {
                        Type::Struct(c)
                    } else {
                        Type::Union(c)
                    }
                }
                6 | 19 => {
                    let mut values = Vec::with_capacity(vlen);
                    for _ in 0..vlen {
                        let name = string(r.u32()?)?;
                        let lo = r.u32()?;
                        let v = if kind == 6 {
                            // kind_flag: signed values; clang 14 leaves it clear.
                            if kind_flag {
                                i64::from(lo as i32)
                            } else {
                                i64::from(lo)
                            }
                        } else {
                            (i64::from(r.u32()?) << 32) | i64::from(lo)
                        };
                        values.push((name, v));
                    }
                    Type::Enum(Enum {
                        name,
                        size: size_or_type as usize,
                        values,
                    })
                }
                8 | 9 | 10 | 11 | 18 => Type::Alias(size_or_type),
                13 => {
                    r.pos += 8 * vlen;
                    Type::Other
                }
                14 | 17 => {
                    r.pos += 4;
                    Type::Other
                }
                15 => {
                    r.pos += 12 * vlen;
                    Type::Other
                }
                16 => Type::Float {
                    size: size_or_type as usize,
                },
                7 | 12 => Type::Other,
                _ => return Err(format!("BTF kind {kind} unknown to this reader")),
            };
            types.push(ty);
        }
        Ok(Self { types })
    }

    fn get(&self, id: u32) -> &Type {
        &self.types[id as usize]
    }

    fn resolve(&self, mut id: u32) -> u32 {
        while let Type::Alias(t) = self.get(id) {
            id = *t;
        }
        id
    }

    /// Size in bytes of a type.
    pub fn size(&self, id: u32) -> usize {
        match self.get(self.resolve(id)) {
            Type::Void | Type::Other => 0,
            Type::Int { size, .. } | Type::Float { size } => *size,
            Type::Ptr => 8,
            Type::Array { elem, n } => n * self.size(*elem),
            Type::Struct(c) | Type::Union(c) => c.size,
            Type::Enum(e) => e.size,
            Type::Alias(_) => unreachable!("resolved"),
        }
    }

    pub fn shape(&self, id: u32) -> Shape {
        match self.get(self.resolve(id)) {
            Type::Int { name, encoding, .. } if encoding & BTF_INT_CHAR != 0 || name == "char" => {
                Shape::Char
            }
            Type::Int { size, encoding, .. } => Shape::Int {
                size: *size,
                signed: encoding & BTF_INT_SIGNED != 0,
            },
            Type::Array { elem, n } => Shape::Array(Box::new(self.shape(*elem)), *n),
            Type::Ptr => Shape::Ptr,
            Type::Struct(c) => Shape::Struct(c.name.clone()),
            Type::Union(c) => Shape::Union(c.name.clone()),
            Type::Enum(e) => Shape::Enum(e.name.clone()),
            Type::Void | Type::Float { .. } | Type::Other | Type::Alias(_) => Shape::Other(id),
        }
    }

    pub fn struct_by_name(&self, name: &str) -> Option<&Composite> {
        self.types.iter().find_map(|t| match t {
            Type::Struct(c) if c.name == name => Some(c),
            _ => None,
        })
    }

    pub fn enum_by_name(&self, name: &str) -> Option<&Enum> {
        self.types.iter().find_map(|t| match t {
            Type::Enum(e) if e.name == name => Some(e),
            _ => None,
        })
    }
}
