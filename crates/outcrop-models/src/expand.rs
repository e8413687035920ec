//! Q4_1 weights re-encoded as Q8_0, for llama.cpp's CPU backend.
//!
//! ggml's CPU backend multiplies Q4_1 weights one dot product at a time: it has no batched
//! (tinyBLAS or repacked) kernel for that type, so decoding 8 sequences together costs nearly
//! 8 times one, and prompts are slow. Q8_0 has those kernels. Re-encoding a Q4_1 tensor as
//! Q8_0 is close to exact: each value of a Q4_1 block (`d * q + m`, q in 0..16) is rounded to
//! one of 255 steps of its block's largest magnitude, an error that for weights spread around
//! zero is about a tenth of the Q4_1 step itself. Measured in docs/benchmarks.md; the cost is
//! memory (34 bytes per 32 weights instead of 20).

use crate::gguf::{self, TensorInfo, FILE_TYPE_Q8_0, TYPE_Q4_1, TYPE_Q8_0};
use half::f16;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

const QK: usize = 32;
const Q4_1_BLOCK: usize = 20;
const Q8_0_BLOCK: usize = 34;
/// Blocks converted per read (about 80 KB in, 136 KB out).
const CHUNK_BLOCKS: usize = 4096;
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// One Q4_1 block (f16 scale, f16 minimum, 16 bytes of nibbles: values 0-15 low, 16-31
/// high) as one Q8_0 block (f16 scale, 32 signed bytes), with ggml's own arithmetic
/// (`dequantize_row_q4_1`, then `quantize_row_q8_0_ref`).
pub fn q4_1_block_to_q8_0(src: &[u8], dst: &mut [u8]) {
    let d = f16::from_le_bytes([src[0], src[1]]).to_f32();
    let m = f16::from_le_bytes([src[2], src[3]]).to_f32();
    let mut x = [0f32; QK];
    for (j, &byte) in src[4..Q4_1_BLOCK].iter().enumerate() {
        x[j] = f32::from(byte & 0x0F) * d + m;
        x[j + QK / 2] = f32::from(byte >> 4) * d + m;
    }
    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let scale = amax / 127.0;
    let inverse = if scale != 0.0 { 1.0 / scale } else { 0.0 };
    dst[..2].copy_from_slice(&f16::from_f32(scale).to_le_bytes());
    for (q, v) in dst[2..Q8_0_BLOCK].iter_mut().zip(x) {
        *q = ((v * inverse).round() as i8) as u8;
    }
}

/// Whether the GGUF at `path` holds any Q4_1 tensor.
pub fn has_q4_1(path: &Path) -> io::Result<bool> {
    let header = gguf::read_header(&mut BufReader::new(File::open(path)?))?;
    Ok(header.tensors.iter().any(|t| t.ty == TYPE_Q4_1))
}

/// Writes to `out` a copy of the GGUF `src` in which every Q4_1 tensor is Q8_0 (and the file
/// type says so); metadata and every other tensor are copied as they are. Calls `progress`
/// with the tensor bytes read so far and their total after each tensor. Returns the number
/// of tensors converted.
pub fn expand_q4_1(
    src: &Path,
    out: &Path,
    mut progress: impl FnMut(u64, u64),
) -> io::Result<usize> {
    let mut input = BufReader::new(File::open(src)?);
    let header = gguf::read_header(&mut input)?;
    let spans = gguf::spans(&header, std::fs::metadata(src)?.len())?;
    let mut metadata = header.metadata.clone();
    if let Some(at) = header.file_type_at {
        metadata[at..at + 4].copy_from_slice(&FILE_TYPE_Q8_0.to_le_bytes());
    }
    // New layout: the same order, each tensor at the next aligned offset.
    let mut tensors = Vec::with_capacity(header.tensors.len());
    let mut sizes = Vec::with_capacity(header.tensors.len());
    let mut at = 0;
    for (t, &span) in header.tensors.iter().zip(&spans) {
        let size = match t.ty {
            TYPE_Q4_1 => q8_0_size(t, span)?,
            _ => span,
        };
        tensors.push(TensorInfo {
            ty: if t.ty == TYPE_Q4_1 { TYPE_Q8_0 } else { t.ty },
            offset: at,
            ..t.clone()
        });
        sizes.push(size);
        at = gguf::align(at + size, header.alignment);
    }
    let mut output = BufWriter::new(File::create(out)?);
    gguf::write_header(&mut output, &header, &metadata, &tensors)?;
    let (mut converted, mut done, total) = (0, 0, spans.iter().sum());
    for ((t, &span), size) in header.tensors.iter().zip(&spans).zip(sizes) {
        gguf::seek_tensor(&mut input, &header, t)?;
        if t.ty == TYPE_Q4_1 {
            convert_tensor(&mut input, &mut output, size as usize / Q8_0_BLOCK)?;
            converted += 1;
        } else {
            io::copy(&mut (&mut input).take(span), &mut output)?;
        }
        gguf::pad(&mut output, header.alignment)?;
        done += span;
        progress(done, total);
    }
    output
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    Ok(converted)
}

/// A Q4_1 tensor's size as Q8_0, after checking that its blocks fit its span.
fn q8_0_size(t: &TensorInfo, span: u64) -> io::Result<u64> {
    let bad = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("tensor {}: {why}", t.name),
        )
    };
    let rows_whole = t.dims.first().is_some_and(|&d| d % QK as u64 == 0);
    if !rows_whole {
        return Err(bad("rows are not whole Q4_1 blocks"));
    }
    let blocks = t.elements() / QK as u64;
    if blocks * Q4_1_BLOCK as u64 > span {
        return Err(bad("its data runs past the next tensor"));
    }
    Ok(blocks * Q8_0_BLOCK as u64)
}

fn convert_tensor(input: &mut impl Read, output: &mut impl Write, blocks: usize) -> io::Result<()> {
    let mut src = vec![0u8; CHUNK_BLOCKS * Q4_1_BLOCK];
    let mut dst = vec![0u8; CHUNK_BLOCKS * Q8_0_BLOCK];
    let mut left = blocks;
    while left > 0 {
        let n = left.min(CHUNK_BLOCKS);
        input.read_exact(&mut src[..n * Q4_1_BLOCK])?;
        for (s, d) in src[..n * Q4_1_BLOCK]
            .chunks_exact(Q4_1_BLOCK)
            .zip(dst.chunks_exact_mut(Q8_0_BLOCK))
        {
            q4_1_block_to_q8_0(s, d);
        }
        output.write_all(&dst[..n * Q8_0_BLOCK])?;
        left -= n;
    }
    Ok(())
}

/// The model llama.cpp should load for `model` on a CPU: `model` itself when it has no Q4_1
/// tensor, else its Q8_0 re-encoding `<dir>/<name>.q8_0.gguf`, made (atomically) unless the
/// one there was made from this same file (path, size and modification time, noted beside it
/// in `<name>.q8_0.source`).
pub fn q8_0_weights(model: &Path, dir: &Path, name: &str) -> io::Result<PathBuf> {
    if !has_q4_1(model)? {
        return Ok(model.to_path_buf());
    }
    let derived = dir.join(format!("{name}.q8_0.gguf"));
    let noted = dir.join(format!("{name}.q8_0.source"));
    let source = source_note(model)?;
    if derived.is_file() && std::fs::read_to_string(&noted).is_ok_and(|n| n == source) {
        return Ok(derived);
    }
    std::fs::create_dir_all(dir)?;
    let started = std::time::Instant::now();
    tracing::info!(model = %model.display(), to = %derived.display(),
        "re-encoding Q4_1 weights as Q8_0 for the CPU's batched kernels (once)");
    let part = tempfile::Builder::new()
        .prefix(&format!(".{name}"))
        .suffix(".part")
        .tempfile_in(dir)?;
    // A large model takes minutes: say how far it is, every few seconds.
    let mut said = started;
    let converted = expand_q4_1(model, part.path(), |done, total| {
        if said.elapsed() >= PROGRESS_EVERY && done < total {
            said = std::time::Instant::now();
            tracing::info!(
                percent = done * 100 / total.max(1),
                "re-encoding Q4_1 weights as Q8_0"
            );
        }
    })?;
    // As readable as the model it was made from (a temporary file is private to its owner).
    std::fs::set_permissions(part.path(), std::fs::metadata(model)?.permissions())?;
    part.persist(&derived).map_err(|e| e.error)?;
    std::fs::write(&noted, source)?;
    tracing::info!(
        tensors = converted,
        ms = started.elapsed().as_millis() as u64,
        "Q8_0 weights written"
    );
    Ok(derived)
}

/// What identifies the file a derived one was made from.
fn source_note(model: &Path) -> io::Result<String> {
    let meta = std::fs::metadata(model)?;
    let modified = meta
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let path = std::fs::canonicalize(model)?;
    Ok(format!("{}\n{}\n{modified}\n", path.display(), meta.len()))
}

#[cfg(test)]
mod tests;
