//! The fixed-size, checksummed records an `append` workload writes, so that a
//! later check can tell which acknowledged records survived intact.

/// One record: `sq <workload> <seq> <crc32 of the rest>` padded to size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub workload: String,
    pub seq: u64,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record is not valid utf-8 text")]
    NotText,
    #[error("record header is malformed: {0:?}")]
    Malformed(String),
    #[error("record {seq} checksum mismatch")]
    Checksum { seq: u64 },
}

impl Record {
    /// The bytes of this record, exactly `size` long (at least the header; a
    /// newline ends it so the file stays readable with `less`).
    pub fn encode(&self, size: usize) -> Vec<u8> {
        let body = format!("sq {} {:016}", self.workload, self.seq);
        let pad_len = size.saturating_sub(body.len() + 10);
        let pad: String = (0..pad_len)
            .map(|i| (b'a' + ((self.seq as usize + i) % 26) as u8) as char)
            .collect();
        let crc = crc32(format!("{body}{pad}").as_bytes());
        format!("{body} {crc:08x}{pad}\n").into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Record, RecordError> {
        let text = std::str::from_utf8(bytes).map_err(|_| RecordError::NotText)?;
        let text = text.strip_suffix('\n').unwrap_or(text);
        let malformed = || RecordError::Malformed(text.chars().take(40).collect());
        let mut parts = text.splitn(4, ' ');
        let (Some("sq"), Some(workload), Some(seq), Some(rest)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        let n: u64 = seq.parse().map_err(|_| malformed())?;
        let (crc, pad) = rest.split_at_checked(8).ok_or_else(malformed)?;
        let crc = u32::from_str_radix(crc, 16).map_err(|_| malformed())?;
        if crc32(format!("sq {workload} {seq}{pad}").as_bytes()) != crc {
            return Err(RecordError::Checksum { seq: n });
        }
        Ok(Record {
            workload: workload.to_string(),
            seq: n,
        })
    }
}

/// CRC-32 (IEEE 802.3), bitwise: records are small and this avoids a crate.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn records_have_the_requested_size_and_round_trip() {
        let r = Record {
            workload: "writer".into(),
            seq: 12,
        };
        let bytes = r.encode(4096);
        assert_eq!(bytes.len(), 4096);
        assert_eq!(Record::decode(&bytes).unwrap(), r);
    }

    #[test]
    fn a_flipped_byte_is_a_checksum_error() {
        let mut bytes = Record {
            workload: "w".into(),
            seq: 3,
        }
        .encode(128);
        bytes[100] ^= 1;
        assert_eq!(
            Record::decode(&bytes),
            Err(RecordError::Checksum { seq: 3 })
        );
        assert!(matches!(
            Record::decode(b"garbage"),
            Err(RecordError::Malformed(_))
        ));
    }
}
