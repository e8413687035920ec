//! Just enough of the GGUF file format to rewrite a model's tensor data: the header, the
//! metadata (kept as raw bytes, walked only to find its end and two keys), and the tensor
//! table. Written by hand because the crates that read GGUF come with a whole ML framework
//! (candle) or cannot write; the format is small and versioned (v2/v3, little-endian).

use std::io::{self, Read, Seek, SeekFrom, Write};

pub const MAGIC: &[u8; 4] = b"GGUF";
/// ggml's type ids of the tensor types this crate converts between.
pub const TYPE_Q4_1: u32 = 3;
pub const TYPE_Q8_0: u32 = 8;
/// llama.cpp's `general.file_type` value for "mostly Q8_0".
pub const FILE_TYPE_Q8_0: u32 = 7;
const DEFAULT_ALIGNMENT: u64 = 32;
/// Metadata value types (gguf.h).
const VALUE_STRING: u32 = 8;
const VALUE_ARRAY: u32 = 9;
/// Bounds that a well-formed file stays far below; past them the file is refused instead of
/// allocating what a corrupt length asks for.
const MAX_STRING: u64 = 1 << 24;
const MAX_DIMS: u32 = 8;

/// One entry of the tensor table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub dims: Vec<u64>,
    pub ty: u32,
    /// From the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// A parsed GGUF header: everything before the tensor data.
#[derive(Debug, Clone)]
pub struct Header {
    pub version: u32,
    pub kv_count: u64,
    /// The metadata key/value pairs exactly as stored.
    pub metadata: Vec<u8>,
    /// Where `general.file_type`'s u32 value sits in `metadata`, if present.
    pub file_type_at: Option<usize>,
    pub alignment: u64,
    pub tensors: Vec<TensorInfo>,
    /// Absolute offset of the data section.
    pub data_start: u64,
}

fn bad(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// Reads little-endian values and keeps a copy of what it read (the metadata's raw bytes).
struct Reader<R> {
    inner: R,
    copy: Option<Vec<u8>>,
}

impl<R: Read> Reader<R> {
    fn bytes(&mut self, n: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; n];
        self.inner.read_exact(&mut buf)?;
        if let Some(copy) = &mut self.copy {
            copy.extend_from_slice(&buf);
        }
        Ok(buf)
    }

    /// The magic and a version this module reads; returns the version.
    fn preamble(&mut self) -> io::Result<u32> {
        if self.bytes(4)? != MAGIC {
            return Err(bad("not a GGUF file"));
        }
        let version = self.u32()?;
        if !(2..=3).contains(&version) {
            return Err(bad(format!("GGUF version {version} (2 and 3 are read)")));
        }
        Ok(version)
    }

    fn u32(&mut self) -> io::Result<u32> {
        Ok(u32::from_le_bytes(
            self.bytes(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> io::Result<u64> {
        Ok(u64::from_le_bytes(
            self.bytes(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn string(&mut self) -> io::Result<String> {
        let len = self.u64()?;
        if len > MAX_STRING {
            return Err(bad(format!("a string of {len} bytes")));
        }
        String::from_utf8(self.bytes(len as usize)?).map_err(|_| bad("a string is not UTF-8"))
    }

    fn skip(&mut self, n: u64) -> io::Result<()> {
        let mut left = n;
        while left > 0 {
            let step = left.min(1 << 16);
            self.bytes(step as usize)?;
            left -= step;
        }
        Ok(())
    }

    /// Skips one metadata value of type `ty`.
    fn skip_value(&mut self, ty: u32) -> io::Result<()> {
        match ty {
            VALUE_STRING => {
                let len = self.u64()?;
                if len > MAX_STRING {
                    return Err(bad(format!("a string of {len} bytes")));
                }
                self.skip(len)
            }
            VALUE_ARRAY => {
                let elem = self.u32()?;
                let n = self.u64()?;
                match scalar_size(elem) {
                    Some(size) => self.skip(n.checked_mul(size).ok_or_else(|| bad("array size"))?),
                    None if elem == VALUE_STRING => (0..n).try_for_each(|_| self.skip_value(elem)),
                    None => Err(bad(format!("an array of value type {elem}"))),
                }
            }
            _ => self.skip(scalar_size(ty).ok_or_else(|| bad(format!("value type {ty}")))?),
        }
    }
}

fn scalar_size(ty: u32) -> Option<u64> {
    match ty {
        0 | 1 | 7 => Some(1), // u8, i8, bool
        2 | 3 => Some(2),     // u16, i16
        4..=6 => Some(4),     // u32, i32, f32
        10..=12 => Some(8),   // u64, i64, f64
        _ => None,
    }
}

/// Reads the header and tensor table of a GGUF file.
pub fn read_header<R: Read + Seek>(file: &mut R) -> io::Result<Header> {
    let mut r = Reader {
        inner: &mut *file,
        copy: None,
    };
    let version = r.preamble()?;
    let tensor_count = r.u64()?;
    let kv_count = r.u64()?;
    r.copy = Some(Vec::new());
    let (mut file_type_at, mut alignment) = (None, DEFAULT_ALIGNMENT);
    for _ in 0..kv_count {
        let key = r.string()?;
        let ty = r.u32()?;
        let at = r.copy.as_ref().map_or(0, Vec::len);
        match (key.as_str(), ty) {
            ("general.file_type", 4) => {
                file_type_at = Some(at);
                r.u32()?;
            }
            ("general.alignment", 4) => {
                alignment = u64::from(r.u32()?);
                if alignment == 0 || !alignment.is_power_of_two() {
                    return Err(bad(format!("alignment {alignment}")));
                }
            }
            _ => r.skip_value(ty)?,
        }
    }
    let metadata = r.copy.take().unwrap_or_default();
    let mut tensors = Vec::new();
    for _ in 0..tensor_count {
        let name = r.string()?;
        let n_dims = r.u32()?;
        if n_dims > MAX_DIMS {
            return Err(bad(format!("tensor {name} has {n_dims} dimensions")));
        }
        let dims = (0..n_dims)
            .map(|_| r.u64())
            .collect::<io::Result<Vec<_>>>()?;
        let ty = r.u32()?;
        let offset = r.u64()?;
        tensors.push(TensorInfo {
            name,
            dims,
            ty,
            offset,
        });
    }
    let end = file.stream_position()?;
    Ok(Header {
        version,
        kv_count,
        metadata,
        file_type_at,
        alignment,
        tensors,
        data_start: align(end, alignment),
    })
}

/// What `outcrop models list` shows of a GGUF model, from its metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Description {
    /// `general.architecture` (`llama`, `qwen2`, `gemma3`, ...).
    pub architecture: String,
    /// `general.file_type` as llama.cpp names it (`Q4_K_M`, `Q8_0`, ...).
    pub quantization: String,
    /// `{architecture}.context_length`: the context it was trained for.
    pub context: Option<u32>,
    /// Whether it has a chat template (`tokenizer.chat_template`).
    pub chat_template: bool,
    /// KV cache bytes per token of context (F16 keys and values in every layer).
    pub kv_bytes_per_token: Option<u64>,
}

/// Reads the metadata of a GGUF file for [`Description`].
pub fn describe<R: Read>(file: R) -> io::Result<Description> {
    let mut r = Reader {
        inner: file,
        copy: None,
    };
    r.preamble()?;
    let _tensors = r.u64()?;
    let kv_count = r.u64()?;
    let mut d = Description::default();
    let mut numbers = std::collections::HashMap::new();
    for _ in 0..kv_count {
        let key = r.string()?;
        let ty = r.u32()?;
        match (key.as_str(), ty) {
            ("general.architecture", VALUE_STRING) => d.architecture = r.string()?,
            ("general.file_type", 4) => d.quantization = file_type_name(r.u32()?),
            (k, 4) => {
                numbers.insert(k.to_owned(), u64::from(r.u32()?));
            }
            ("tokenizer.chat_template", VALUE_STRING) => {
                d.chat_template = true;
                r.skip_value(ty)?;
            }
            _ => r.skip_value(ty)?,
        }
    }
    let get = |k: &str| numbers.get(&format!("{}.{k}", d.architecture)).copied();
    d.context = get("context_length").and_then(|c| u32::try_from(c).ok());
    d.kv_bytes_per_token = (|| {
        let layers = get("block_count")?;
        let heads = get("attention.head_count")?;
        let kv_heads = get("attention.head_count_kv").unwrap_or(heads);
        let head_dim = get("embedding_length")? / heads.max(1);
        let key = get("attention.key_length").unwrap_or(head_dim);
        let value = get("attention.value_length").unwrap_or(head_dim);
        Some(layers * kv_heads * (key + value) * 2)
    })();
    Ok(d)
}

/// llama.cpp's names of `llama_ftype` values.
fn file_type_name(t: u32) -> String {
    let name = match t {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        32 => "BF16",
        other => return format!("type {other}"),
    };
    name.to_owned()
}

pub fn align(n: u64, alignment: u64) -> u64 {
    n.div_ceil(alignment) * alignment
}

/// Writes a header with `tensors` (their offsets already laid out) and pads to the data
/// section; returns the data section's absolute offset.
pub fn write_header<W: Write + Seek>(
    out: &mut W,
    header: &Header,
    metadata: &[u8],
    tensors: &[TensorInfo],
) -> io::Result<u64> {
    out.write_all(MAGIC)?;
    out.write_all(&header.version.to_le_bytes())?;
    out.write_all(&(tensors.len() as u64).to_le_bytes())?;
    out.write_all(&header.kv_count.to_le_bytes())?;
    out.write_all(metadata)?;
    for t in tensors {
        out.write_all(&(t.name.len() as u64).to_le_bytes())?;
        out.write_all(t.name.as_bytes())?;
        out.write_all(&(t.dims.len() as u32).to_le_bytes())?;
        for d in &t.dims {
            out.write_all(&d.to_le_bytes())?;
        }
        out.write_all(&t.ty.to_le_bytes())?;
        out.write_all(&t.offset.to_le_bytes())?;
    }
    pad(out, header.alignment)
}

/// Pads with zeros to the next multiple of `alignment`; returns the new position.
pub fn pad<W: Write + Seek>(out: &mut W, alignment: u64) -> io::Result<u64> {
    let at = out.stream_position()?;
    let to = align(at, alignment);
    out.write_all(&vec![0; (to - at) as usize])?;
    Ok(to)
}

/// Each tensor's stored bytes, as the span up to the next tensor (or the end of the file):
/// exact for every type without a table of ggml's block sizes (padding included).
pub fn spans(header: &Header, file_len: u64) -> io::Result<Vec<u64>> {
    let data_len = file_len
        .checked_sub(header.data_start)
        .ok_or_else(|| bad("the file ends inside its header"))?;
    let mut order: Vec<usize> = (0..header.tensors.len()).collect();
    order.sort_by_key(|&i| header.tensors[i].offset);
    let mut spans = vec![0; header.tensors.len()];
    for (k, &i) in order.iter().enumerate() {
        let start = header.tensors[i].offset;
        let end = order
            .get(k + 1)
            .map_or(data_len, |&j| header.tensors[j].offset);
        spans[i] = end
            .checked_sub(start)
            .filter(|_| end <= data_len)
            .ok_or_else(|| {
                bad(format!(
                    "tensor {} lies outside the file",
                    header.tensors[i].name
                ))
            })?;
    }
    Ok(spans)
}

/// Seeks to a tensor's data.
pub fn seek_tensor<R: Seek>(file: &mut R, header: &Header, t: &TensorInfo) -> io::Result<()> {
    file.seek(SeekFrom::Start(header.data_start + t.offset))
        .map(|_| ())
}
