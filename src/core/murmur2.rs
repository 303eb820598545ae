//! Kafka's default partitioner, so a key lands on the same partition number the Java
//! client (and KafkaJS's `DefaultPartitioner`) picks.

/// Kafka's `Utils.murmur2`: MurmurHash2, 32-bit, seed `0x9747b28c`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len();
    let mut h: u32 = SEED ^ (length as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= (rest[2] as u32) << 16;
    }
    if rest.len() >= 2 {
        h ^= (rest[1] as u32) << 8;
    }
    if !rest.is_empty() {
        h ^= rest[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// `(murmur2(utf8(key)) & 0x7fffffff) % partitions`, Kafka's `Utils.toPositive` then modulo.
pub fn partition_for_key(key: &str, partitions: u32) -> u32 {
    debug_assert!(partitions > 0);
    ((murmur2(key.as_bytes()) as u32) & 0x7fff_ffff) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of Kafka's own `UtilsTest.testMurmur2`.
    #[test]
    fn kafka_test_vectors() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
            (b"abc", 479470107),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input), expected, "murmur2({:?})", std::str::from_utf8(input));
        }
    }

    #[test]
    fn partition_is_positive_modulo() {
        // -973932308 & 0x7fffffff = 1173551340; % 8 = 4
        assert_eq!(partition_for_key("21", 8), 1173551340 % 8);
        assert_eq!(partition_for_key("abc", 1), 0);
        for p in 1..=256 {
            assert!(partition_for_key("order-42", p) < p);
        }
    }
}
