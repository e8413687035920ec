/// Joins token byte pieces into text. A multi-byte character may be split across tokens, so
/// an incomplete tail is held back until the next piece completes it.
#[derive(Debug, Default)]
pub struct Utf8Assembler {
    pending: Vec<u8>,
}

impl Utf8Assembler {
    /// Adds bytes and returns the text that is complete so far. Invalid bytes become U+FFFD.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).unwrap_or_default());
                    match e.error_len() {
                        // An incomplete sequence at the end: wait for more bytes.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Ends the text. Only an incomplete character can be pending (a token limit cut it in
    /// half); it is dropped rather than shown as a replacement character.
    pub fn finish(&mut self) -> String {
        self.pending.clear();
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_multibyte_character_is_held_back() {
        let bytes = "こんにちは".as_bytes();
        let mut a = Utf8Assembler::default();
        assert_eq!(a.push(&bytes[..2]), "");
        assert_eq!(a.push(&bytes[2..4]), "こ");
        assert_eq!(a.push(&bytes[4..]), "んにちは");
        assert_eq!(a.finish(), "");
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut a = Utf8Assembler::default();
        assert_eq!(a.push(b"a\xffb"), "a\u{fffd}b");
        assert_eq!(a.push(b"\xe3\x81"), "");
        assert_eq!(a.finish(), "", "a character cut in half is dropped");
    }
}
