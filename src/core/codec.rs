//! A small binary encoding (LEB128 varints and length-prefixed bytes) for log chunks
//! and records. Reading never panics: corrupt or truncated input is a `STORAGE` error.

use super::error::{FerryError, Result};

#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn with_capacity(capacity: usize) -> Self {
        Writer { buf: Vec::with_capacity(capacity) }
    }

    pub fn u64(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.buf.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.buf.push(value as u8);
    }

    pub fn u8(&mut self, value: u8) {
        self.buf.push(value);
    }

    pub fn bytes(&mut self, value: &[u8]) {
        self.u64(value.len() as u64);
        self.buf.extend_from_slice(value);
    }

    pub fn str(&mut self, value: &str) {
        self.bytes(value.as_bytes());
    }

    /// `None` as 0, `Some(s)` as `len + 1` then the bytes.
    pub fn opt_str(&mut self, value: Option<&str>) {
        match value {
            None => self.u64(0),
            Some(s) => {
                self.u64(s.len() as u64 + 1);
                self.buf.extend_from_slice(s.as_bytes());
            }
        }
    }

    /// `None` as 0, `Some(n)` as `n + 1`.
    pub fn opt_u64(&mut self, value: Option<u64>) {
        self.u64(value.map_or(0, |n| n.saturating_add(1)));
    }
}

pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn corrupt(what: &str) -> FerryError {
    FerryError::storage(format!("corrupt record: {what}"))
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub fn u64(&mut self) -> Result<u64> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = *self.buf.get(self.pos).ok_or_else(|| corrupt("truncated varint"))?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(corrupt("varint longer than 64 bits"))
    }

    pub fn u32(&mut self) -> Result<u32> {
        u32::try_from(self.u64()?).map_err(|_| corrupt("u32 out of range"))
    }

    pub fn u8(&mut self) -> Result<u8> {
        let byte = *self.buf.get(self.pos).ok_or_else(|| corrupt("truncated byte"))?;
        self.pos += 1;
        Ok(byte)
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8]> {
        let len = usize::try_from(len).map_err(|_| corrupt("length out of range"))?;
        let end = self.pos.checked_add(len).filter(|&e| e <= self.buf.len()).ok_or_else(|| corrupt("truncated bytes"))?;
        let slice = &self.buf[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = self.u64()?;
        self.take(len)
    }

    pub fn str(&mut self) -> Result<&'a str> {
        std::str::from_utf8(self.bytes()?).map_err(|_| corrupt("invalid UTF-8"))
    }

    pub fn opt_str(&mut self) -> Result<Option<&'a str>> {
        match self.u64()? {
            0 => Ok(None),
            n => std::str::from_utf8(self.take(n - 1)?).map(Some).map_err(|_| corrupt("invalid UTF-8")),
        }
    }

    pub fn opt_u64(&mut self) -> Result<Option<u64>> {
        Ok(self.u64()?.checked_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut w = Writer::default();
        for v in [0, 1, 127, 128, 300, u64::MAX] {
            w.u64(v);
        }
        w.str("héllo");
        w.opt_str(None);
        w.opt_str(Some(""));
        w.opt_u64(Some(0));
        w.opt_u64(None);
        let mut r = Reader::new(&w.buf);
        for v in [0, 1, 127, 128, 300, u64::MAX] {
            assert_eq!(r.u64().unwrap(), v);
        }
        assert_eq!(r.str().unwrap(), "héllo");
        assert_eq!(r.opt_str().unwrap(), None);
        assert_eq!(r.opt_str().unwrap(), Some(""));
        assert_eq!(r.opt_u64().unwrap(), Some(0));
        assert_eq!(r.opt_u64().unwrap(), None);
        assert!(r.is_empty());
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let mut w = Writer::default();
        w.str("hello world");
        for cut in 0..w.buf.len() {
            assert!(Reader::new(&w.buf[..cut]).str().is_err());
        }
        assert!(Reader::new(&[0xff; 11]).u64().is_err());
        assert!(Reader::new(&[2, 0xff, 0xfe]).str().is_err());
    }
}
