//! [`Texts`]: many short texts in one buffer.

/// Many short texts kept in a few buffers: a mailing's 200,000 recipients take a few
/// dozen allocations rather than 200,000 (a `Vec<String>`, each with the allocator's
/// overhead, scattered where freed memory is hard to give back), and never one buffer
/// that doubles (which would hold the old and the new copy at once).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Texts {
    chunks: Vec<String>,
    spans: Vec<Span>,
}

/// Where one text lies: its chunk, and its bytes in it.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Span {
    chunk: u32,
    start: u32,
    end: u32,
}

/// The size of a chunk; a longer text gets a chunk of its own.
const CHUNK: usize = 256 * 1024;

impl Texts {
    /// Appends one text.
    pub fn push(&mut self, text: &str) {
        let room = self.chunks.last().map_or(0, |c| c.capacity() - c.len());
        if room < text.len() || self.chunks.is_empty() {
            self.chunks.push(String::with_capacity(CHUNK.max(text.len())));
        }
        let chunk = self.chunks.len() - 1;
        let buffer = &mut self.chunks[chunk];
        let start = buffer.len();
        buffer.push_str(text);
        let offset = |at: usize| u32::try_from(at).expect("a chunk holds less than 4 GiB");
        self.spans.push(Span {
            chunk: offset(chunk),
            start: offset(start),
            end: offset(buffer.len()),
        });
    }

    /// How many texts there are.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The `n`th text, if there are that many.
    pub fn get(&self, n: usize) -> Option<&str> {
        self.spans.get(n).map(|&span| self.text(span))
    }

    /// The texts in the order they were pushed.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.spans.iter().map(|&span| self.text(span))
    }

    fn text(&self, span: Span) -> &str {
        &self.chunks[span.chunk as usize][span.start as usize..span.end as usize]
    }
}

impl<S: AsRef<str>> FromIterator<S> for Texts {
    fn from_iter<I: IntoIterator<Item = S>>(texts: I) -> Self {
        let mut all = Texts::default();
        texts.into_iter().for_each(|text| all.push(text.as_ref()));
        all
    }
}

impl std::fmt::Debug for Texts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::Texts;

    #[test]
    fn texts_come_back_as_pushed_empty_ones_included() {
        let texts: Texts = ["a@example.org", "", "ünïcode@example.org"].into_iter().collect();
        assert_eq!(texts.len(), 3);
        assert_eq!(
            texts.iter().collect::<Vec<_>>(),
            ["a@example.org", "", "ünïcode@example.org"]
        );
        assert_eq!(texts.get(1), Some(""));
        assert_eq!(texts.get(2), Some("ünïcode@example.org"));
        assert_eq!(texts.get(3), None);
        assert!(Texts::default().is_empty());
        // Across chunks, and one text longer than a chunk.
        let long = "x".repeat(super::CHUNK + 1);
        let many: Texts = (0..20_000)
            .map(|n| format!("customer.{n:06}@example.org"))
            .chain([long.clone(), "last".into()])
            .collect();
        assert_eq!(many.len(), 20_002);
        assert_eq!(many.get(12_345), Some("customer.012345@example.org"));
        assert_eq!(many.get(20_000), Some(long.as_str()));
        assert_eq!(many.iter().last(), Some("last"));
        assert_eq!(Texts::default().iter().count(), 0);
    }
}
