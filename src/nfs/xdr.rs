//! XDR (RFC 4506) encoding and decoding with every length field bounded.
//!
//! The decoder never trusts a length on the wire: each variable-length item is
//! read against a caller-supplied cap and against what is left of the record,
//! so a malformed or hostile record yields an `XdrError`, never a panic or a
//! huge allocation.

use thiserror::Error;

/// Why a record could not be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum XdrError {
    #[error("record truncated at byte {at}: needed {needed} more bytes")]
    Truncated { at: usize, needed: usize },
    #[error("length {len} at byte {at} exceeds the cap of {max}")]
    TooLong { at: usize, len: u32, max: u32 },
    #[error("invalid boolean {value} at byte {at}")]
    BadBool { at: usize, value: u32 },
    #[error("invalid discriminant {value} at byte {at}")]
    BadEnum { at: usize, value: u32 },
}

/// Bytes of padding that follow `len` bytes of opaque data (RFC 4506 §4.10).
pub fn pad_len(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// A cursor over one decoded record.
#[derive(Debug, Clone)]
pub struct XdrReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> XdrReader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        XdrReader { buf, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The undecoded rest of the record, without consuming it.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], XdrError> {
        if self.remaining() < n {
            return Err(XdrError::Truncated {
                at: self.pos,
                needed: n - self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn u32(&mut self) -> Result<u32, XdrError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn i32(&mut self) -> Result<i32, XdrError> {
        Ok(self.u32()? as i32)
    }

    pub fn u64(&mut self) -> Result<u64, XdrError> {
        let hi = self.u32()? as u64;
        let lo = self.u32()? as u64;
        Ok(hi << 32 | lo)
    }

    pub fn bool(&mut self) -> Result<bool, XdrError> {
        let at = self.pos;
        match self.u32()? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(XdrError::BadBool { at, value }),
        }
    }

    /// Fixed-length opaque data of `n` bytes plus its padding.
    pub fn opaque_fixed(&mut self, n: usize) -> Result<&'a [u8], XdrError> {
        let data = self.take(n)?;
        self.take(pad_len(n))?;
        Ok(data)
    }

    /// Variable-length opaque data of at most `max` bytes.
    pub fn opaque(&mut self, max: u32) -> Result<&'a [u8], XdrError> {
        let at = self.pos;
        let len = self.u32()?;
        if len > max {
            return Err(XdrError::TooLong { at, len, max });
        }
        self.opaque_fixed(len as usize)
    }

    /// A string of at most `max` bytes. XDR strings are bytes; names that are
    /// not UTF-8 are kept as bytes (Linux file names need not be UTF-8).
    pub fn string(&mut self, max: u32) -> Result<&'a [u8], XdrError> {
        self.opaque(max)
    }

    /// An array count, capped both by `max` and by the bytes left (every
    /// element takes at least 4 bytes), so a lying count cannot make the caller
    /// allocate for it.
    pub fn count(&mut self, max: u32) -> Result<u32, XdrError> {
        let at = self.pos;
        let len = self.u32()?;
        if len > max {
            return Err(XdrError::TooLong { at, len, max });
        }
        if (len as usize).saturating_mul(4) > self.remaining() {
            return Err(XdrError::Truncated {
                at: self.pos,
                needed: len as usize * 4 - self.remaining(),
            });
        }
        Ok(len)
    }
}

/// An encoder that appends to a growable buffer.
#[derive(Debug, Default, Clone)]
pub struct XdrWriter {
    buf: Vec<u8>,
}

impl XdrWriter {
    pub fn new() -> Self {
        XdrWriter::default()
    }

    pub fn with_capacity(n: usize) -> Self {
        XdrWriter {
            buf: Vec::with_capacity(n),
        }
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Overwrites the word at byte `at`, written earlier as a placeholder
    /// (a count or status known only once what follows is encoded).
    pub fn patch_u32(&mut self, at: usize, v: u32) {
        self.buf[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }

    /// Drops everything after `len`, used to undo a partly encoded body.
    pub fn truncate(&mut self, len: usize) {
        self.buf.truncate(len);
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.u32(v as u32)
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u32(v as u32)
    }

    pub fn opaque_fixed(&mut self, data: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(data);
        self.buf.extend_from_slice(&[0u8; 3][..pad_len(data.len())]);
        self
    }

    pub fn opaque(&mut self, data: &[u8]) -> &mut Self {
        self.u32(data.len() as u32);
        self.opaque_fixed(data)
    }

    pub fn string(&mut self, s: &[u8]) -> &mut Self {
        self.opaque(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_scalars_and_opaques() {
        let mut w = XdrWriter::new();
        w.u32(7)
            .i32(-2)
            .u64(0x0102_0304_0506_0708)
            .bool(true)
            .opaque(b"abcde")
            .string(b"xy")
            .opaque_fixed(&[9, 9, 9]);
        let bytes = w.into_bytes();
        // 4 + 4 + 8 + 4 + (4 + 8) + (4 + 4) + 4
        assert_eq!(bytes.len(), 44);
        let mut r = XdrReader::new(&bytes);
        assert_eq!(r.u32().unwrap(), 7);
        assert_eq!(r.i32().unwrap(), -2);
        assert_eq!(r.u64().unwrap(), 0x0102_0304_0506_0708);
        assert!(r.bool().unwrap());
        assert_eq!(r.opaque(16).unwrap(), b"abcde");
        assert_eq!(r.string(16).unwrap(), b"xy");
        assert_eq!(r.opaque_fixed(3).unwrap(), &[9, 9, 9]);
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn padding_is_zero_filled() {
        let mut w = XdrWriter::new();
        w.opaque(b"a");
        assert_eq!(w.as_bytes(), &[0, 0, 0, 1, b'a', 0, 0, 0]);
    }

    #[test]
    fn lengths_over_cap_are_rejected() {
        let mut w = XdrWriter::new();
        w.opaque(&[1u8; 10]);
        let bytes = w.into_bytes();
        let mut r = XdrReader::new(&bytes);
        assert_eq!(
            r.opaque(8),
            Err(XdrError::TooLong {
                at: 0,
                len: 10,
                max: 8
            })
        );
    }

    #[test]
    fn huge_length_on_short_record_is_truncation_not_allocation() {
        let bytes = [0xff, 0xff, 0xff, 0xf0, 1, 2];
        let mut r = XdrReader::new(&bytes);
        assert!(matches!(
            r.opaque(u32::MAX),
            Err(XdrError::Truncated { .. })
        ));
        let mut r = XdrReader::new(&bytes);
        assert!(matches!(r.count(u32::MAX), Err(XdrError::Truncated { .. })));
    }

    #[test]
    fn bad_bool_and_truncated_scalars() {
        let mut r = XdrReader::new(&[0, 0, 0, 2]);
        assert_eq!(r.bool(), Err(XdrError::BadBool { at: 0, value: 2 }));
        let mut r = XdrReader::new(&[0, 0, 0, 1, 0]);
        assert!(matches!(r.u64(), Err(XdrError::Truncated { at: 4, .. })));
    }

    #[test]
    fn every_prefix_of_a_record_fails_cleanly() {
        let mut w = XdrWriter::new();
        w.u32(1).opaque(b"hello world").u64(5);
        let bytes = w.into_bytes();
        for cut in 0..bytes.len() {
            let mut r = XdrReader::new(&bytes[..cut]);
            let res = (|| {
                r.u32()?;
                r.opaque(64)?;
                r.u64()
            })();
            assert!(res.is_err(), "prefix of {cut} bytes decoded");
        }
    }
}
