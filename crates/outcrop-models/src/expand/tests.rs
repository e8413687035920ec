use super::*;
use crate::gguf::read_header;
use half::f16;
use std::io::Cursor;

/// A Q4_1 block from its scale, minimum and 32 nibbles.
fn q4_1_block(d: f32, m: f32, q: &[u8; 32]) -> Vec<u8> {
    let mut b = Vec::with_capacity(Q4_1_BLOCK);
    b.extend_from_slice(&f16::from_f32(d).to_le_bytes());
    b.extend_from_slice(&f16::from_f32(m).to_le_bytes());
    b.extend((0..16).map(|j| q[j] | (q[j + 16] << 4)));
    b
}

fn q4_1_values(block: &[u8]) -> Vec<f32> {
    let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
    let m = f16::from_le_bytes([block[2], block[3]]).to_f32();
    let mut x = vec![0.0; 32];
    for j in 0..16 {
        x[j] = f32::from(block[4 + j] & 15) * d + m;
        x[j + 16] = f32::from(block[4 + j] >> 4) * d + m;
    }
    x
}

fn q8_0_values(block: &[u8]) -> Vec<f32> {
    let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
    block[2..34]
        .iter()
        .map(|&q| f32::from(q as i8) * d)
        .collect()
}

/// Asserts that a Q8_0 block holds a Q4_1 block's values to within Q8_0 rounding: half a
/// step, plus what storing the step as f16 moves the largest value (2^-11 of it).
fn assert_within_rounding(q4_1: &[u8], q8_0: &[u8]) {
    let want = q4_1_values(q4_1);
    let amax = want.iter().fold(0f32, |a, v| a.max(v.abs()));
    let bound = amax / 127.0 * 0.5 + amax / 2048.0 + 1e-6;
    for (w, g) in want.iter().zip(q8_0_values(q8_0)) {
        assert!((w - g).abs() <= bound, "{w} became {g} (bound {bound})");
    }
}

#[test]
fn a_block_keeps_its_values_to_within_q8_0_rounding() {
    let nibbles: [u8; 32] = std::array::from_fn(|i| ((i * 7) % 16) as u8);
    for (d, m) in [(0.013, -0.1), (0.002, 0.0), (1.0, -7.5), (0.05, 0.3)] {
        let src = q4_1_block(d, m, &nibbles);
        let mut dst = [0u8; Q8_0_BLOCK];
        q4_1_block_to_q8_0(&src, &mut dst);
        let want = q4_1_values(&src);
        let step = f16::from_le_bytes([dst[0], dst[1]]).to_f32();
        let amax = want.iter().fold(0f32, |a, v| a.max(v.abs()));
        assert!(
            (step - amax / 127.0).abs() <= amax / 127.0 * 1e-3,
            "scale {step} for amax {amax}"
        );
        assert_within_rounding(&src, &dst);
    }
}

#[test]
fn a_block_converts_as_ggml_does() {
    // d = 1, m = 0, values 0..15 twice: amax 15, so 15 -> 127 and 7 -> round(59.27) = 59.
    let nibbles: [u8; 32] = std::array::from_fn(|i| (i % 16) as u8);
    let mut dst = [0u8; Q8_0_BLOCK];
    q4_1_block_to_q8_0(&q4_1_block(1.0, 0.0, &nibbles), &mut dst);
    assert_eq!(
        f16::from_le_bytes([dst[0], dst[1]]),
        f16::from_f32(15.0 / 127.0)
    );
    assert_eq!(dst[2 + 15] as i8, 127);
    assert_eq!(dst[2 + 7] as i8, 59);
    assert_eq!(dst[2 + 16] as i8, 0);
    // A block of zeros has scale 0 and stays zero (no division by zero).
    q4_1_block_to_q8_0(&q4_1_block(0.0, 0.0, &[0; 32]), &mut dst);
    assert!(dst.iter().all(|&b| b == 0));
}

/// A GGUF v3 file: a string, an array of strings, a u32 array, `general.file_type`,
/// `general.alignment`, then the tensors given as (name, dims, type, data).
fn gguf_file(alignment: u32, tensors: &[(&str, Vec<u64>, u32, Vec<u8>)]) -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    let mut f = Vec::new();
    f.extend_from_slice(b"GGUF");
    f.extend_from_slice(&3u32.to_le_bytes());
    f.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    f.extend_from_slice(&5u64.to_le_bytes());
    string(&mut f, "general.name");
    f.extend_from_slice(&8u32.to_le_bytes());
    string(&mut f, "tiny");
    string(&mut f, "tokenizer.ggml.tokens");
    f.extend_from_slice(&9u32.to_le_bytes());
    f.extend_from_slice(&8u32.to_le_bytes());
    f.extend_from_slice(&2u64.to_le_bytes());
    string(&mut f, "<s>");
    string(&mut f, "hello");
    string(&mut f, "tokenizer.ggml.token_type");
    f.extend_from_slice(&9u32.to_le_bytes());
    f.extend_from_slice(&5u32.to_le_bytes());
    f.extend_from_slice(&2u64.to_le_bytes());
    f.extend_from_slice(&[1, 0, 0, 0, 1, 0, 0, 0]);
    string(&mut f, "general.file_type");
    f.extend_from_slice(&4u32.to_le_bytes());
    f.extend_from_slice(&3u32.to_le_bytes());
    string(&mut f, "general.alignment");
    f.extend_from_slice(&4u32.to_le_bytes());
    f.extend_from_slice(&alignment.to_le_bytes());
    let align = |n: usize| n.div_ceil(alignment as usize) * alignment as usize;
    let mut offset = 0;
    for (name, dims, ty, data) in tensors {
        string(&mut f, name);
        f.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            f.extend_from_slice(&d.to_le_bytes());
        }
        f.extend_from_slice(&ty.to_le_bytes());
        f.extend_from_slice(&(offset as u64).to_le_bytes());
        offset = align(offset + data.len());
    }
    f.resize(align(f.len()), 0);
    for (_, _, _, data) in tensors {
        f.extend_from_slice(data);
        f.resize(align(f.len()), 0);
    }
    f
}

fn tiny_model(dir: &Path) -> (PathBuf, Vec<u8>, Vec<u8>) {
    let nibbles: [u8; 32] = std::array::from_fn(|i| ((i * 5 + 3) % 16) as u8);
    let mut weights = q4_1_block(0.02, -0.15, &nibbles);
    weights.extend(q4_1_block(0.5, 1.0, &nibbles));
    weights.extend(q4_1_block(0.001, 0.0, &nibbles));
    weights.extend(q4_1_block(0.3, -2.0, &nibbles));
    let norm: Vec<u8> = [1.0f32, 2.0, 3.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let file = gguf_file(
        32,
        &[
            (
                "blk.0.attn_q.weight",
                vec![64, 2],
                TYPE_Q4_1,
                weights.clone(),
            ),
            ("blk.0.attn_norm.weight", vec![3], 0, norm.clone()),
        ],
    );
    let path = dir.join("tiny.gguf");
    std::fs::write(&path, file).unwrap();
    (path, weights, norm)
}

#[test]
fn a_file_is_rewritten_with_q8_0_tensors_and_everything_else_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (src, weights, norm) = tiny_model(dir.path());
    let out = dir.path().join("out.gguf");
    let mut seen = Vec::new();
    assert_eq!(
        expand_q4_1(&src, &out, |done, total| seen.push((done, total))).unwrap(),
        1
    );
    // After each of the two tensors, ending at all of the data section (padding included).
    let data_len = std::fs::metadata(&src).unwrap().len();
    let [(first, t1), (last, t2)] = seen[..] else {
        panic!("{seen:?}")
    };
    assert!(
        0 < first && first < last && t1 == t2 && last == t2 && t2 < data_len,
        "{seen:?}"
    );
    let bytes = std::fs::read(&out).unwrap();
    let header = read_header(&mut Cursor::new(&bytes)).unwrap();
    let source = read_header(&mut Cursor::new(std::fs::read(&src).unwrap())).unwrap();
    assert_eq!(header.version, 3);
    assert_eq!(header.kv_count, source.kv_count);
    let at = header.file_type_at.unwrap();
    assert_eq!(header.metadata[at..at + 4], FILE_TYPE_Q8_0.to_le_bytes());
    // The metadata is otherwise byte for byte the same.
    let mut expected = source.metadata.clone();
    expected[at..at + 4].copy_from_slice(&FILE_TYPE_Q8_0.to_le_bytes());
    assert_eq!(header.metadata, expected);
    let [q, n] = &header.tensors[..] else {
        panic!("two tensors")
    };
    assert_eq!(
        (q.name.as_str(), q.dims.as_slice(), q.ty),
        ("blk.0.attn_q.weight", &[64, 2][..], TYPE_Q8_0)
    );
    assert_eq!((n.name.as_str(), n.ty), ("blk.0.attn_norm.weight", 0));
    assert_eq!(q.offset, 0);
    assert_eq!(n.offset % 32, 0);
    let data = |t: &TensorInfo, len: usize| {
        let start = (header.data_start + t.offset) as usize;
        &bytes[start..start + len]
    };
    assert_eq!(data(n, 12), &norm[..]);
    let converted = data(q, 4 * Q8_0_BLOCK);
    for (src, dst) in weights.chunks(Q4_1_BLOCK).zip(converted.chunks(Q8_0_BLOCK)) {
        assert_within_rounding(src, dst);
    }
}

/// The tiny model in a temporary directory and its derived file, made once: (the directory,
/// the model, the derived directory, the derived file).
fn derived_once() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (src, _, _) = tiny_model(dir.path());
    let cache = dir.path().join("derived");
    let derived = q8_0_weights(&src, &cache, "tiny").unwrap();
    (dir, src, cache, derived)
}

#[test]
fn the_derived_file_is_made_once_and_only_for_q4_1_models() {
    let (_dir, src, cache, derived) = derived_once();
    assert_eq!(derived, cache.join("tiny.q8_0.gguf"));
    assert!(!has_q4_1(&derived).unwrap());
    let made = std::fs::metadata(&derived).unwrap().modified().unwrap();
    assert_eq!(q8_0_weights(&src, &cache, "tiny").unwrap(), derived);
    assert_eq!(
        std::fs::metadata(&derived).unwrap().modified().unwrap(),
        made
    );
    // The file and its note, no temporary file left behind.
    let mut names: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["tiny.q8_0.gguf", "tiny.q8_0.source"]);
    // A model without Q4_1 tensors is loaded as it is.
    assert_eq!(q8_0_weights(&derived, &cache, "other").unwrap(), derived);
}

#[test]
fn a_changed_model_is_converted_again() {
    let (_dir, src, cache, derived) = derived_once();
    std::fs::write(&derived, b"stale").unwrap();
    // Same source: the derived file is trusted as it is.
    q8_0_weights(&src, &cache, "tiny").unwrap();
    assert_eq!(std::fs::read(&derived).unwrap(), b"stale");
    // The source touched (as a new pull would): made again.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    File::options()
        .write(true)
        .open(&src)
        .unwrap()
        .set_modified(later)
        .unwrap();
    q8_0_weights(&src, &cache, "tiny").unwrap();
    assert!(std::fs::read(&derived).unwrap().starts_with(b"GGUF"));
}

#[test]
fn broken_files_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (src, _, _) = tiny_model(dir.path());
    let good = std::fs::read(&src).unwrap();
    let out = dir.path().join("out.gguf");
    let refused = |bytes: &[u8]| {
        let p = dir.path().join("broken.gguf");
        std::fs::write(&p, bytes).unwrap();
        let e = expand_q4_1(&p, &out, |_, _| {}).unwrap_err();
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
            ),
            "{e}"
        );
        e.to_string()
    };
    assert!(refused(b"GGML\x03\0\0\0").contains("not a GGUF file"));
    let mut v1 = good.clone();
    v1[4] = 1;
    assert!(refused(&v1).contains("version 1"));
    // Cut inside the tensor data: the Q4_1 tensor no longer fits.
    refused(&good[..good.len() - 60]);
    // Cut inside the metadata.
    refused(&good[..40]);
    // A string length no file has.
    let mut long = good.clone();
    long[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(refused(&long).contains("bytes"));
}

#[test]
fn a_model_is_described_from_its_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _, _) = tiny_model(dir.path());
    let d = crate::gguf::describe(std::fs::File::open(&path).unwrap()).unwrap();
    assert_eq!(d.quantization, "Q4_1");
    assert_eq!(
        (d.architecture.as_str(), d.context, d.chat_template),
        ("", None, false)
    );
    assert!(crate::gguf::describe(&b"GGUX"[..]).is_err());
}
