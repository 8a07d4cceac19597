//! The footer: the section, state and metadata tables, and their bounded decoder.

// A length field narrowed by `as` would encode a different length than it claims.
#![deny(clippy::cast_possible_truncation)]

use super::*;

/// The footer: what the archive holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Footer {
    /// The sections in archive order.
    pub sections: Vec<SectionEntry>,
    /// The complete file set after applying this snapshot, sorted by name.
    pub state: Vec<StateEntry>,
    /// Caller key/value metadata.
    pub metadata: Vec<(String, Vec<u8>)>,
}

impl Footer {
    /// Encodes head, body and CRC.
    ///
    /// # Panics
    ///
    /// If a name, a metadata value or a table is too long for its length or count field,
    /// which [`Footer::validate`] rules out (`ArchiveWriter::finish` validates first).
    pub fn encode(&self) -> Vec<u8> {
        const NAME: &str = "Footer::validate: names to MAX_NAME_BYTES";
        let mut body = Vec::new();
        for s in &self.sections {
            let name = s.name.as_bytes();
            let mut e = [0u8; SECTION_ENTRY_FIXED_BYTES];
            e[0] = s.kind.code();
            e[1] = s.compression.code();
            put_u16(&mut e, 2, narrow(name.len(), NAME));
            put_u64(&mut e, 8, s.header_offset);
            put_u64(&mut e, 16, s.totals.raw_bytes);
            put_u64(&mut e, 24, s.totals.stored_bytes);
            put_u64(&mut e, 32, s.totals.block_count);
            e[40..72].copy_from_slice(&s.totals.content_hash);
            body.extend_from_slice(&e);
            body.extend_from_slice(name);
        }
        for s in &self.state {
            let name = s.name.as_bytes();
            let mut e = [0u8; STATE_ENTRY_FIXED_BYTES];
            put_u16(&mut e, 0, narrow(name.len(), NAME));
            put_u64(&mut e, 8, s.len);
            e[16..48].copy_from_slice(&s.hash);
            body.extend_from_slice(&e);
            body.extend_from_slice(name);
        }
        for (key, value) in &self.metadata {
            let mut e = [0u8; METADATA_ENTRY_FIXED_BYTES];
            put_u16(&mut e, 0, narrow(key.len(), NAME));
            let value_len = narrow(value.len(), "Footer::validate: MAX_METADATA_BYTES");
            put_u32(&mut e, 4, value_len);
            body.extend_from_slice(&e);
            body.extend_from_slice(key.as_bytes());
            body.extend_from_slice(value);
        }
        let mut out = vec![0u8; FOOTER_HEAD_BYTES];
        out[..4].copy_from_slice(&FOOTER_MAGIC);
        const COUNT: &str = "Footer::validate: table lengths to u32::MAX";
        put_u32(&mut out, 4, narrow(self.sections.len(), COUNT));
        put_u32(&mut out, 8, narrow(self.state.len(), COUNT));
        put_u32(&mut out, 12, narrow(self.metadata.len(), COUNT));
        put_u64(&mut out, 16, body.len() as u64);
        out.extend_from_slice(&body);
        let crc = crc32(&[&out]);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes a footer from its 24-byte head, its body and its CRC (`offset` is the
    /// footer's archive offset, for messages). Validates names and the tables' own rules.
    pub fn decode(
        head: &[u8; FOOTER_HEAD_BYTES],
        body: &[u8],
        crc: u32,
        offset: u64,
    ) -> Result<Self> {
        if head[..4] != FOOTER_MAGIC {
            return Err(Error::corrupt(offset, "bad footer magic"));
        }
        if crc32(&[head, body]) != crc {
            return Err(Error::ChecksumMismatch {
                what: "footer".into(),
                offset,
            });
        }
        if u64_at(head, 16) != body.len() as u64 {
            return Err(Error::corrupt(offset, "footer body length mismatch"));
        }
        let n_sections = u32_at(head, 4) as usize;
        let n_state = u32_at(head, 8) as usize;
        let n_meta = u32_at(head, 12) as usize;
        let mut cur = Cursor(LeReader::with_base(body, offset + FOOTER_HEAD_BYTES as u64));
        // Capacities are bounded by what the body could possibly hold.
        let mut sections =
            Vec::with_capacity(n_sections.min(body.len() / SECTION_ENTRY_FIXED_BYTES));
        for _ in 0..n_sections {
            let at = cur.offset();
            let e = cur.take(SECTION_ENTRY_FIXED_BYTES)?;
            let kind = SectionKind::from_code(e[0])
                .ok_or_else(|| Error::corrupt(at, format!("unknown section kind {}", e[0])))?;
            let compression = Compression::from_code(e[1])
                .ok_or_else(|| Error::corrupt(at, format!("unknown compression {}", e[1])))?;
            let name_len = u16_at(e, 2) as usize;
            if u32_at(e, 4) != 0 {
                return Err(Error::corrupt(at, "reserved footer bits are set"));
            }
            let totals = SectionTotals {
                raw_bytes: u64_at(e, 16),
                stored_bytes: u64_at(e, 24),
                block_count: u64_at(e, 32),
                content_hash: array_at(e, 40),
            };
            let header_offset = u64_at(e, 8);
            let name = cur.name(name_len)?;
            sections.push(SectionEntry {
                kind,
                compression,
                name,
                header_offset,
                totals,
            });
        }
        let mut state = Vec::with_capacity(n_state.min(body.len() / STATE_ENTRY_FIXED_BYTES));
        for _ in 0..n_state {
            let at = cur.offset();
            let e = cur.take(STATE_ENTRY_FIXED_BYTES)?;
            let name_len = u16_at(e, 0) as usize;
            if e[2..8].iter().any(|&x| x != 0) {
                return Err(Error::corrupt(at, "reserved footer bits are set"));
            }
            let len = u64_at(e, 8);
            let hash = array_at(e, 16);
            let name = cur.name(name_len)?;
            state.push(StateEntry { name, len, hash });
        }
        let mut metadata = Vec::with_capacity(n_meta.min(body.len() / METADATA_ENTRY_FIXED_BYTES));
        for _ in 0..n_meta {
            let at = cur.offset();
            let e = cur.take(METADATA_ENTRY_FIXED_BYTES)?;
            let key_len = u16_at(e, 0) as usize;
            if u16_at(e, 2) != 0 {
                return Err(Error::corrupt(at, "reserved footer bits are set"));
            }
            let value_len = u32_at(e, 4) as usize;
            let key = cur.name(key_len)?;
            let value = cur.take(value_len)?.to_vec();
            metadata.push((key, value));
        }
        if cur.0.remaining() != 0 {
            return Err(Error::corrupt(
                cur.offset(),
                "footer body has bytes after its last entry",
            ));
        }
        let footer = Footer {
            sections,
            state,
            metadata,
        };
        footer.validate(offset)?;
        Ok(footer)
    }

    /// The table rules: table lengths that fit their counts, valid unique names, sorted
    /// state, metadata within limits, and the section and state tables agreeing with each
    /// other.
    pub fn validate(&self, offset: u64) -> Result<()> {
        // The head counts each table in a u32 (always true of a decoded footer).
        for (what, len) in [
            ("footer sections", self.sections.len()),
            ("footer state entries", self.state.len()),
            ("footer metadata entries", self.metadata.len()),
        ] {
            if u32::try_from(len).is_err() {
                return Err(Error::limit(what, len as u64, u64::from(u32::MAX)));
            }
        }
        check_names(self.sections.iter().map(|s| s.name.as_str()), "section")?;
        check_names(self.state.iter().map(|s| s.name.as_str()), "state entry")?;
        if self.state.windows(2).any(|w| w[0].name >= w[1].name) {
            return Err(Error::corrupt(offset, "state table is not sorted by name"));
        }
        let mut meta_bytes = 0u64;
        let mut keys = BTreeSet::new();
        for (key, value) in &self.metadata {
            validate_name(key)?;
            if !keys.insert(key.as_str()) {
                return Err(Error::DuplicateName {
                    name: key.clone(),
                    detail: "two metadata entries".into(),
                });
            }
            meta_bytes += (key.len() + value.len()) as u64;
        }
        if meta_bytes > MAX_METADATA_BYTES {
            return Err(Error::limit(
                "metadata bytes",
                meta_bytes,
                MAX_METADATA_BYTES,
            ));
        }
        for s in &self.sections {
            let state = self
                .state
                .binary_search_by(|e| e.name.as_str().cmp(&s.name))
                .ok()
                .map(|i| &self.state[i]);
            match (s.kind, state) {
                (SectionKind::File, Some(e))
                    if e.len == s.totals.raw_bytes && e.hash == s.totals.content_hash => {}
                (SectionKind::File, _) => {
                    return Err(Error::corrupt(
                        offset,
                        format!("file section {:?} disagrees with the state table", s.name),
                    ));
                }
                (SectionKind::Removed, None) => {
                    if s.totals != SectionTotals::empty() || s.compression != Compression::None {
                        return Err(Error::corrupt(
                            offset,
                            format!("removed section {:?} has content", s.name),
                        ));
                    }
                }
                (SectionKind::Removed, Some(_)) => {
                    return Err(Error::corrupt(
                        offset,
                        format!("removed section {:?} is still in the state table", s.name),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The footer body's reader: the shared little-endian cursor, with the footer's error.
struct Cursor<'a>(LeReader<'a>);

impl<'a> Cursor<'a> {
    fn offset(&self) -> u64 {
        self.0.offset()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        self.0.take(n).map_err(|short| {
            Error::corrupt(
                short.offset,
                format!("footer entry of {n} bytes runs past the footer body"),
            )
        })
    }

    fn name(&mut self, len: usize) -> Result<String> {
        if len == 0 || len > MAX_NAME_BYTES {
            return Err(Error::corrupt(
                self.offset(),
                format!("name length {len} outside 1..={MAX_NAME_BYTES}"),
            ));
        }
        let bytes = self.take(len)?;
        let name = String::from_utf8(bytes.to_vec()).map_err(|_| Error::InvalidName {
            name: String::from_utf8_lossy(bytes).into_owned(),
            reason: "not UTF-8",
        })?;
        validate_name(&name)?;
        Ok(name)
    }
}
