//! The 128-bit cell of the subscription rings on x86-64 (with SSE; not
//! under Miri, which runs no inline assembly, nor in SGX, which has no
//! `cpuid`):
//! `portable-atomic`'s `AtomicU128`, with the hardware paths inlined.
//!
//! Without `cmpxchg16b` enabled at compile time (the default target),
//! `portable-atomic` picks its implementation at run time and calls it
//! through a function pointer on every operation. Here the CPU is asked once
//! (`CPU`), and then the same instructions `portable-atomic` would run are
//! inlined: `lock cmpxchg16b` for compare-exchange, `vmovdqa` (atomic on
//! CPUs with AVX) for loads and stores. A CPU without `cmpxchg16b` gets
//! `portable-atomic`'s own (lock-based) fallback for *every* operation on
//! the cell, so atomic and fallback accesses are never mixed; without AVX
//! loads and stores go to `portable-atomic` too (which then uses
//! `cmpxchg16b`, the same hardware atomic as ours).

use core::arch::asm;
use core::sync::atomic::{AtomicU8, Ordering};

/// Detected CPU support: `DETECTED`, plus `CX16` and `AVX` when present.
static CPU: AtomicU8 = AtomicU8::new(0);
const DETECTED: u8 = 1;
/// `cmpxchg16b` is available.
const CX16: u8 = 2;
/// AVX is available and enabled by the OS (`vmovdqa` is atomic).
const AVX: u8 = 4;

/// `cpuid` leaf 1: the feature bits in `ecx`.
fn cpuid1_ecx() -> u32 {
    let ecx: u32;
    // SAFETY: `cpuid` exists on every x86-64 CPU outside SGX enclaves (not
    // a target of this crate). rbx is reserved by LLVM, so it is saved in a
    // scratch register and restored; `cpuid` writes eax, ebx, ecx, edx
    // only.
    unsafe {
        asm!(
            "mov {tmp}, rbx",
            "cpuid",
            "mov rbx, {tmp}",
            tmp = out(reg) _,
            inout("eax") 1u32 => _,
            inout("ecx") 0u32 => ecx,
            out("edx") _,
            options(nostack, preserves_flags, nomem),
        );
    }
    ecx
}

/// `xgetbv` with `ecx = 0`: the OS-enabled state components (XCR0).
fn xcr0() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: called only when `cpuid` reports XSAVE and OSXSAVE, so
    // `xgetbv` is available and enabled; it writes eax and edx only.
    unsafe {
        asm!(
            "xgetbv",
            in("ecx") 0u32,
            out("eax") lo,
            out("edx") hi,
            options(nostack, preserves_flags, nomem),
        );
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

#[cold]
#[inline(never)]
fn detect() -> u8 {
    let ecx = cpuid1_ecx();
    let bit = |n: u32| ecx & (1 << n) != 0;
    let mut f = DETECTED;
    if bit(13) {
        f |= CX16;
    }
    // XSAVE (26) and OSXSAVE (27) before `xgetbv`; AVX (28) with the SSE
    // and AVX state enabled by the OS (XCR0 bits 1 and 2).
    if bit(26) && bit(27) && bit(28) && xcr0() & 6 == 6 {
        f |= AVX;
    }
    // Relaxed: every thread computes the same value; the flag carries no
    // other data.
    CPU.store(f, Ordering::Relaxed);
    f
}

/// Everything the inlined paths use.
const ALL: u8 = DETECTED | CX16 | AVX;

#[inline(always)]
fn cpu() -> u8 {
    // Relaxed: see `detect`.
    let f = CPU.load(Ordering::Relaxed);
    if f == 0 { detect() } else { f }
}

/// Whether the CPU has everything (the common case: one compare).
#[inline(always)]
fn has_all() -> bool {
    // Relaxed: see `detect`.
    CPU.load(Ordering::Relaxed) == ALL || cpu() == ALL
}

/// A 128-bit atomic integer (see the module docs).
#[derive(Debug)]
#[repr(transparent)]
pub(crate) struct AtomicU128(portable_atomic::AtomicU128);

impl AtomicU128 {
    pub(crate) const fn new(v: u128) -> Self {
        Self(portable_atomic::AtomicU128::new(v))
    }

    #[inline(always)]
    pub(crate) fn load(&self, order: Ordering) -> u128 {
        match Fast::get() {
            Some(fast) => fast.load(self),
            None => self.0.load(order),
        }
    }

    #[inline(always)]
    pub(crate) fn store(&self, v: u128, order: Ordering) {
        match Fast::get() {
            Some(fast) if order != Ordering::SeqCst => fast.store(self, v),
            _ => self.0.store(v, order),
        }
    }

    /// `lock cmpxchg16b` (always `SeqCst`), or `portable-atomic`'s fallback.
    #[inline(always)]
    pub(crate) fn compare_exchange(
        &self,
        current: u128,
        new: u128,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u128, u128> {
        if let Some(fast) = Fast::get() {
            return fast.compare_exchange(self, current, new);
        }
        if cpu() & CX16 != 0 {
            // `cmpxchg16b` without AVX: the hardware instruction all the same.
            return cmpxchg16b(self, current, new);
        }
        self.0.compare_exchange(current, new, success, failure)
    }

    #[inline(always)]
    pub(crate) fn compare_exchange_weak(
        &self,
        current: u128,
        new: u128,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u128, u128> {
        self.compare_exchange(current, new, success, failure)
    }
}

/// Proof that the CPU has everything the inlined paths use, taken once by a
/// caller that makes many accesses (a notify filling every subscriber's
/// ring), so each access skips the check.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fast(());

impl Fast {
    #[inline(always)]
    pub(crate) fn get() -> Option<Self> {
        has_all().then_some(Self(()))
    }

    /// An atomic load (`vmovdqa`), as strong as `Acquire` (and `SeqCst`).
    #[inline(always)]
    pub(crate) fn load(self, cell: &AtomicU128) -> u128 {
        let (lo, hi): (u64, u64);
        // SAFETY: the cell is 16-byte aligned (`portable_atomic::AtomicU128`
        // is) and valid for reads; `self` proves the CPU has AVX, on which
        // an aligned `vmovdqa` is a single atomic access (as `portable-atomic`
        // relies on), and `cmpxchg16b`, so every other access to the cell is
        // a hardware atomic too. x86 loads are acquire (and a `SeqCst` load
        // is a plain load: `SeqCst` stores carry the fence); the asm is a
        // compiler barrier.
        unsafe {
            asm!(
                "vmovdqa {v}, xmmword ptr [{src}]",
                "vmovq {lo}, {v}",
                "vpextrq {hi}, {v}, 1",
                src = in(reg) cell.0.as_ptr(),
                v = out(xmm_reg) _,
                lo = out(reg) lo,
                hi = out(reg) hi,
                options(nostack, preserves_flags, readonly),
            );
        }
        (u128::from(hi) << 64) | u128::from(lo)
    }

    /// A `Relaxed` or `Release` store (`vmovdqa`).
    #[inline(always)]
    pub(crate) fn store(self, cell: &AtomicU128, v: u128) {
        // SAFETY: as in `load`, for writes; a Relaxed or Release store is a
        // plain store on x86 (stores are not reordered with earlier loads
        // or stores); the asm is a compiler barrier.
        unsafe {
            asm!(
                "vmovq {v}, {lo}",
                "vpinsrq {v}, {v}, {hi}, 1",
                "vmovdqa xmmword ptr [{dst}], {v}",
                dst = in(reg) cell.0.as_ptr(),
                lo = in(reg) v as u64,
                hi = in(reg) (v >> 64) as u64,
                v = out(xmm_reg) _,
                options(nostack, preserves_flags),
            );
        }
    }

    /// A `SeqCst` compare-exchange (`lock cmpxchg16b`).
    #[inline(always)]
    pub(crate) fn compare_exchange(
        self,
        cell: &AtomicU128,
        current: u128,
        new: u128,
    ) -> Result<u128, u128> {
        cmpxchg16b(cell, current, new)
    }
}

/// `lock cmpxchg16b`; the caller has checked that the CPU has it.
#[inline(always)]
fn cmpxchg16b(cell: &AtomicU128, current: u128, new: u128) -> Result<u128, u128> {
    let (prev_lo, prev_hi, flag): (u64, u64, u64);
    // SAFETY: the cell is 16-byte aligned and valid for reads and writes, and
    // the CPU has `cmpxchg16b` (the caller checked; so every access to the
    // cell is a hardware atomic). If the cell equals rdx:rax, rcx:rbx is
    // stored there and ZF set; else the cell is loaded into rdx:rax. rbx
    // cannot be an operand (LLVM may use it): the new low half is swapped
    // into it from a scratch register (never rsi, which holds the address)
    // and the original restored after. A locked instruction is a
    // full barrier; the asm is a compiler barrier.
    unsafe {
        asm!(
            "xchg {lo}, rbx",
            "lock cmpxchg16b xmmword ptr [rsi]",
            "sete cl",
            "mov rbx, {lo}",
            // The address in a fixed register: with `in(reg)` the register
            // allocator may pick rbx for it (LLVM reserves rbx only from
            // explicit operands), which the swap above would overwrite.
            in("rsi") cell.0.as_ptr(),
            lo = inout(reg) new as u64 => _,
            inout("rcx") (new >> 64) as u64 => flag,
            inout("rax") current as u64 => prev_lo,
            inout("rdx") (current >> 64) as u64 => prev_hi,
            options(nostack),
        );
    }
    let prev = (u128::from(prev_hi) << 64) | u128::from(prev_lo);
    if flag as u8 == 1 { Ok(prev) } else { Err(prev) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inlined paths agree with `portable-atomic` on every operation.
    #[test]
    fn inlined_paths_behave_like_an_atomic_u128() {
        let a = AtomicU128::new(u128::MAX - 5);
        assert_eq!(a.load(Ordering::Acquire), u128::MAX - 5);
        let x = (7u128 << 64) | 0xdead_beef;
        a.store(x, Ordering::Release);
        assert_eq!(a.load(Ordering::Relaxed), x);
        assert_eq!(a.0.load(Ordering::SeqCst), x);
        assert_eq!(
            a.compare_exchange(1, 2, Ordering::SeqCst, Ordering::SeqCst),
            Err(x)
        );
        let y = (u128::from(u64::MAX) << 64) | 3;
        assert_eq!(
            a.compare_exchange(x, y, Ordering::SeqCst, Ordering::SeqCst),
            Ok(x)
        );
        assert_eq!(a.load(Ordering::Acquire), y);
        // Only the high half differs: still a mismatch.
        assert_eq!(
            a.compare_exchange_weak(3, 0, Ordering::SeqCst, Ordering::SeqCst),
            Err(y)
        );
        assert_eq!(a.0.load(Ordering::SeqCst), y);
        let f = cpu();
        assert_ne!(f & DETECTED, 0);
        // Every x86-64 CPU this runs on in practice has `cmpxchg16b`.
        assert_ne!(f & CX16, 0);
    }
}
