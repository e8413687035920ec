/// Finds stop sequences in streamed text. Text that could still become the start of a stop
/// sequence is held back, so a matched sequence is never emitted, even in part.
#[derive(Debug)]
pub struct StopMatcher {
    stops: Vec<String>,
    pending: String,
}

/// The result of feeding text to a [`StopMatcher`].
#[derive(Debug, PartialEq, Eq)]
pub struct Matched {
    /// Text that is safe to emit now.
    pub emit: String,
    /// The stop sequence that matched; generation must end.
    pub stop: Option<String>,
}

impl StopMatcher {
    pub fn new(stops: &[String]) -> Self {
        StopMatcher {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            pending: String::new(),
        }
    }

    pub fn push(&mut self, text: &str) -> Matched {
        self.pending.push_str(text);
        // The earliest match wins; on a tie, the longest sequence.
        let found = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()).map(|at| (at, s)))
            .min_by(|(a, s), (b, t)| a.cmp(b).then(t.len().cmp(&s.len())));
        if let Some((at, stop)) = found {
            let emit = self.pending[..at].to_owned();
            let stop = stop.clone();
            self.pending.clear();
            return Matched {
                emit,
                stop: Some(stop),
            };
        }
        let hold = self.longest_partial_suffix();
        let cut = self.pending.len() - hold;
        let emit = self.pending[..cut].to_owned();
        self.pending.drain(..cut);
        Matched { emit, stop: None }
    }

    /// Text held back when the generation ends for another reason.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }

    /// Length in bytes of the longest suffix of `pending` that is a proper prefix of a stop.
    fn longest_partial_suffix(&self) -> usize {
        let p = &self.pending;
        p.char_indices()
            .map(|(i, _)| i)
            .find(|&i| self.stops.iter().any(|s| s.starts_with(&p[i..])))
            .map_or(0, |i| p.len() - i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stops(s: &[&str]) -> StopMatcher {
        StopMatcher::new(&s.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn match_across_pieces_is_never_emitted() {
        let mut m = stops(&["\n\nHuman:"]);
        assert_eq!(
            m.push("Hello"),
            Matched {
                emit: "Hello".into(),
                stop: None
            }
        );
        assert_eq!(
            m.push(" world\n"),
            Matched {
                emit: " world".into(),
                stop: None
            }
        );
        assert_eq!(
            m.push("\nHum"),
            Matched {
                emit: "".into(),
                stop: None
            }
        );
        assert_eq!(
            m.push("an: next"),
            Matched {
                emit: "".into(),
                stop: Some("\n\nHuman:".into())
            }
        );
    }

    #[test]
    fn false_start_is_released() {
        let mut m = stops(&["STOP"]);
        assert_eq!(m.push("ST").emit, "");
        assert_eq!(m.push("ART").emit, "START");
        assert_eq!(m.finish(), "");
    }

    #[test]
    fn held_text_comes_out_at_the_end() {
        let mut m = stops(&["\n\nHuman:"]);
        assert_eq!(m.push("bye\n").emit, "bye");
        assert_eq!(m.finish(), "\n");
    }

    #[test]
    fn earliest_match_wins() {
        let mut m = stops(&["world", "lo"]);
        assert_eq!(
            m.push("hello world"),
            Matched {
                emit: "hel".into(),
                stop: Some("lo".into())
            }
        );
    }

    #[test]
    fn multibyte_text_and_stops() {
        let mut m = stops(&["。"]);
        assert_eq!(
            m.push("こんにちは。さようなら"),
            Matched {
                emit: "こんにちは".into(),
                stop: Some("。".into())
            }
        );
        let mut m = stops(&["ab"]);
        assert_eq!(m.push("日本a").emit, "日本");
    }

    #[test]
    fn no_stops_passes_everything() {
        let mut m = stops(&[""]);
        assert_eq!(
            m.push("anything"),
            Matched {
                emit: "anything".into(),
                stop: None
            }
        );
    }
}
