//! The WebAssembly builds' allocator (src/heap.rs) under load, in Node
//! (`wasm-bindgen-test`): blocks of every class, runs of pages and over-aligned
//! blocks allocated, grown and freed in a random order never overlap and keep
//! their bytes, and memory freed is used again instead of grown.
#![cfg(target_arch = "wasm32")]

// Linked for its #[global_allocator], which this test binary then allocates with.
extern crate ferry;

use std::alloc::{alloc, dealloc, Layout};
use wasm_bindgen_test::*;

/// xorshift64*: the same sequence every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> usize {
        (self.next() % n) as usize
    }

    /// Mostly small blocks, some of every class up to half a page, a few runs of pages.
    fn size(&mut self) -> usize {
        match self.below(10) {
            0..=5 => 1 + self.below(256),
            6..=8 => 1 + self.below(32 * 1024),
            _ => 1 + self.below(300_000),
        }
    }
}

/// A block the test owns, filled with bytes derived from its tag.
enum Block {
    Bytes(Vec<u8>, u8),
    Aligned(*mut u8, Layout, u8),
}

impl Block {
    fn check(&self) {
        match self {
            Block::Bytes(bytes, tag) => assert!(bytes.iter().enumerate().all(|(i, b)| *b == tag.wrapping_add(i as u8)), "a block kept its bytes"),
            Block::Aligned(block, layout, tag) => {
                assert_eq!(*block as usize % layout.align(), 0, "aligned to {}", layout.align());
                let bytes = unsafe { std::slice::from_raw_parts(*block, layout.size()) };
                assert!(bytes.iter().all(|b| b == tag), "an aligned block kept its bytes");
            }
        }
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        if let Block::Aligned(block, layout, _) = self {
            unsafe { dealloc(*block, *layout) }
        }
    }
}

fn filled(size: usize, tag: u8) -> Block {
    Block::Bytes((0..size).map(|i| tag.wrapping_add(i as u8)).collect(), tag)
}

fn aligned(size: usize, align: usize, tag: u8) -> Block {
    let layout = Layout::from_size_align(size, align).unwrap();
    let block = unsafe { alloc(layout) };
    assert!(!block.is_null());
    unsafe { std::ptr::write_bytes(block, tag, size) };
    Block::Aligned(block, layout, tag)
}

/// Random allocations, growths and frees with `live` blocks held at most, each
/// checked when freed.
fn churn(rng: &mut Rng, operations: usize, live: usize) {
    let mut blocks: Vec<Block> = Vec::new();
    for step in 0..operations {
        let tag = step as u8;
        match rng.below(8) {
            0..=2 if blocks.len() < live => blocks.push(filled(rng.size(), tag)),
            3 if blocks.len() < live => blocks.push(aligned(1 + rng.below(4096), 32 << rng.below(4), tag)),
            4 if !blocks.is_empty() => {
                // A Vec growing in place or moved: its bytes go with it.
                let at = rng.below(blocks.len() as u64);
                if let Block::Bytes(bytes, tag) = &mut blocks[at] {
                    let more = rng.size() / 4;
                    let start = bytes.len();
                    bytes.extend((start..start + more).map(|i| tag.wrapping_add(i as u8)));
                }
            }
            _ if !blocks.is_empty() => {
                let at = rng.below(blocks.len() as u64);
                blocks.swap_remove(at).check();
            }
            _ => {}
        }
    }
    for block in blocks {
        block.check();
    }
}

#[wasm_bindgen_test]
fn blocks_of_every_kind_keep_their_bytes_and_never_overlap() {
    churn(&mut Rng(0x9e37_79b9_7f4a_7c15), 20_000, 400);
}

#[wasm_bindgen_test]
fn memory_freed_is_used_again() {
    // The same load twice from the same seed: the second finds the first's blocks free.
    churn(&mut Rng(7), 5_000, 200);
    let pages = core::arch::wasm32::memory_size(0);
    churn(&mut Rng(7), 5_000, 200);
    assert_eq!(core::arch::wasm32::memory_size(0), pages, "the second run grew memory");
}
