//! The WebAssembly builds' allocator, in place of std's dlmalloc: 7 KB of code in
//! each build, where this is about 1 KB, and every page downloads it.
//!
//! - A block of up to [`CLASS_BYTES_MAX`] bytes comes from one of [`CLASSES`] size
//!   classes, two per power of two above 256 bytes, so at most a third of a block
//!   is slack. A freed block goes on its class's free list, for the next
//!   allocation of that class: both are a few instructions, no search.
//! - A larger block, or one aligned to more than [`ALIGN_BYTES`], is a run of
//!   whole 64 KiB pages, from the smallest free run that holds it. Freed runs are
//!   kept in address order and merged with their neighbours, so a large message
//!   freed can hold two of half its size and two neighbours one of twice theirs.
//! - Classes carve their blocks from an arena of two pages, taken like a run.
//!   What is left of an arena when a block no longer fits goes onto the free
//!   lists of the largest classes it holds, so none of it is lost.
//!
//! Memory only grows (`memory.grow`), as with dlmalloc: a wasm module cannot give
//! pages back. The engine's working set (a commit's records, the messages a
//! round holds) is freed and allocated again in the same sizes, which the free
//! lists serve without growing.

/// Size classes: 16 of 16 to 256 bytes, then two per power of two (3·2ⁿ⁻² and 2ⁿ) up to
/// [`CLASS_BYTES_MAX`].
const CLASSES: usize = 30;
/// The largest block a size class holds: half a page, so an arena holds at least
/// two, and larger blocks, rare in the engine (a large message, a commit's buffer),
/// take whole pages.
const CLASS_BYTES_MAX: usize = 32 * 1024;
/// Every class size is a multiple of this, and arenas start at a page, so every
/// block is aligned to it: the largest alignment of Rust's primitive types on wasm32.
const ALIGN_BYTES: usize = 16;
const PAGE_BYTES: usize = 65_536;

/// The class of a block of `bytes` (1 to [`CLASS_BYTES_MAX`]): the smallest that holds it.
fn class_of(bytes: usize) -> usize {
    if bytes <= 256 {
        return bytes.div_ceil(16) - 1;
    }
    // 2^(bits-1) < bytes <= 2^bits; the octave's classes are 3·2^(bits-2) and 2^bits.
    let bits = (usize::BITS - (bytes - 1).leading_zeros()) as usize;
    16 + 2 * (bits - 9) + usize::from(bytes > 3 << (bits - 2))
}

/// The bytes of a block of `class`.
fn class_bytes(class: usize) -> usize {
    if class < 16 {
        return (class + 1) * 16;
    }
    let bits = 9 + (class - 16) / 2;
    if (class - 16) % 2 == 0 {
        3 << (bits - 2)
    } else {
        1 << bits
    }
}

/// The largest class whose blocks fit in `bytes` (at least 16), for an arena's rest.
fn class_within(bytes: usize) -> usize {
    let class = class_of(bytes.min(CLASS_BYTES_MAX));
    if class_bytes(class) > bytes {
        class - 1
    } else {
        class
    }
}

#[cfg(target_arch = "wasm32")]
mod global {
    // The one allocator of the module, on a single thread: raw addresses and
    // intrusive free lists are what an allocator is made of.
    #![allow(unsafe_code)]

    use super::*;
    use std::alloc::{GlobalAlloc, Layout};
    use std::cell::UnsafeCell;
    use std::ptr::null_mut;

    /// Pages of one arena: 128 KiB, so a class block left over at an arena's end is
    /// rare, and `memory.grow` runs once per 128 KiB of small blocks at most.
    const ARENA_PAGES: usize = 2;

    /// Where the free blocks are. Address 0 is "none": it holds static data, never a block.
    struct Heap {
        /// Each class's first free block; a free block's first word is the next one's address.
        free: [usize; CLASSES],
        /// The current arena's unused bytes, `[top, end)`.
        top: usize,
        end: usize,
        /// The first free run of pages, lowest address first; a run's first word is the
        /// next run's address and its second its page count.
        runs: usize,
    }

    struct Allocator(UnsafeCell<Heap>);

    // wasm32 without the atomics feature has one thread: the heap is never shared.
    unsafe impl Sync for Allocator {}

    #[global_allocator]
    static ALLOCATOR: Allocator = Allocator(UnsafeCell::new(Heap { free: [0; CLASSES], top: 0, end: 0, runs: 0 }));

    unsafe fn word(address: usize, index: usize) -> *mut usize {
        (address as *mut usize).add(index)
    }

    /// Pages for a block of `layout`, or `None` when a size class holds it.
    fn run_pages(layout: &Layout) -> Option<usize> {
        (layout.size() > CLASS_BYTES_MAX || layout.align() > ALIGN_BYTES).then(|| layout.size().div_ceil(PAGE_BYTES))
    }

    impl Heap {
        /// A run of `pages` pages: the smallest free run that holds them (its tail,
        /// when larger), which leaves the large runs whole, else new pages; 0 when
        /// memory cannot grow.
        unsafe fn take_run(&mut self, pages: usize) -> usize {
            let mut best: Option<*mut usize> = None;
            let mut link: *mut usize = &mut self.runs;
            while *link != 0 {
                let run_pages = *word(*link, 1);
                if run_pages >= pages && best.map_or(true, |b| run_pages < *word(*b, 1)) {
                    best = Some(link);
                }
                link = word(*link, 0);
            }
            if let Some(link) = best {
                let run = *link;
                let run_pages = *word(run, 1);
                if run_pages == pages {
                    *link = *word(run, 0);
                    return run;
                }
                *word(run, 1) = run_pages - pages;
                return run + (run_pages - pages) * PAGE_BYTES;
            }
            match core::arch::wasm32::memory_grow(0, pages) {
                usize::MAX => 0,
                first_page => first_page * PAGE_BYTES,
            }
        }

        /// Gives back a run, merged with the free runs just before and after it.
        unsafe fn give_run(&mut self, run: usize, pages: usize) {
            let mut before = 0;
            let mut link: *mut usize = &mut self.runs;
            while *link != 0 && *link < run {
                before = *link;
                link = word(before, 0);
            }
            let (mut next, mut pages) = (*link, pages);
            if next == run + pages * PAGE_BYTES {
                pages += *word(next, 1);
                next = *word(next, 0);
            }
            if before != 0 && before + *word(before, 1) * PAGE_BYTES == run {
                *word(before, 1) += pages;
                *word(before, 0) = next;
            } else {
                *word(run, 0) = next;
                *word(run, 1) = pages;
                *link = run;
            }
        }

        unsafe fn push(&mut self, class: usize, block: usize) {
            *word(block, 0) = self.free[class];
            self.free[class] = block;
        }

        unsafe fn take_block(&mut self, class: usize) -> usize {
            let block = self.free[class];
            if block != 0 {
                self.free[class] = *word(block, 0);
                return block;
            }
            let bytes = class_bytes(class);
            if self.end - self.top < bytes {
                while self.end - self.top >= ALIGN_BYTES {
                    let rest = class_within(self.end - self.top);
                    self.push(rest, self.top);
                    self.top += class_bytes(rest);
                }
                let arena = self.take_run(ARENA_PAGES);
                if arena == 0 {
                    return 0;
                }
                (self.top, self.end) = (arena, arena + ARENA_PAGES * PAGE_BYTES);
            }
            self.top += bytes;
            self.top - bytes
        }
    }

    unsafe impl GlobalAlloc for Allocator {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let heap = &mut *self.0.get();
            let block = match run_pages(&layout) {
                Some(pages) if layout.align() <= PAGE_BYTES => heap.take_run(pages),
                Some(_) => 0,
                None => heap.take_block(class_of(layout.size())),
            };
            if block == 0 {
                null_mut()
            } else {
                block as *mut u8
            }
        }

        unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
            let heap = &mut *self.0.get();
            match run_pages(&layout) {
                Some(pages) => heap.give_run(block as usize, pages),
                None => heap.push(class_of(layout.size()), block as usize),
            }
        }

        /// In place when the new size needs the same class or the same pages (a `Vec`
        /// growing within its block), else moved.
        unsafe fn realloc(&self, block: *mut u8, layout: Layout, bytes: usize) -> *mut u8 {
            let grown = Layout::from_size_align_unchecked(bytes, layout.align());
            let same = match (run_pages(&layout), run_pages(&grown)) {
                (Some(old), Some(new)) => old == new,
                (None, None) => class_of(layout.size()) == class_of(bytes),
                _ => false,
            };
            if same {
                return block;
            }
            let moved = self.alloc(grown);
            if !moved.is_null() {
                std::ptr::copy_nonoverlapping(block, moved, layout.size().min(bytes));
                self.dealloc(block, layout);
            }
            moved
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_size_gets_the_smallest_class_that_holds_it() {
        let mut previous = 0;
        for class in 0..CLASSES {
            let bytes = class_bytes(class);
            assert!(bytes > previous && bytes % ALIGN_BYTES == 0, "class {class}: {bytes} bytes");
            assert!(bytes <= previous + previous / 2 || bytes <= 256, "class {class} wastes at most a third");
            for size in [previous + 1, bytes] {
                assert_eq!(class_of(size), class, "{size} bytes");
            }
            previous = bytes;
        }
        assert_eq!(class_bytes(CLASSES - 1), CLASS_BYTES_MAX);
    }

    #[test]
    fn an_arenas_rest_goes_to_the_largest_class_within_it() {
        for rest in (ALIGN_BYTES..=PAGE_BYTES).step_by(ALIGN_BYTES) {
            let class = class_within(rest);
            assert!(class_bytes(class) <= rest, "{rest} bytes");
            assert!(class == CLASSES - 1 || class_bytes(class + 1) > rest, "{rest} bytes");
        }
    }
}
