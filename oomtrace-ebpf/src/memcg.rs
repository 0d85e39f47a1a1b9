//! The memory limit that binds a task, read in the kernel at the kill: its memcg's
//! `page_counter` and every ancestor's (limits are hierarchical: a charge must fit under every
//! `max` on the way to the root, on cgroup v2 and on v1, where `use_hierarchy` is always 1 since
//! 5.x). The tightest `max` is the limit; its memcg's `usage` and cgroup path go with it.

use oomtrace_common::{ABSENT, VictimRecord};

use crate::{
    cgroup,
    kernel::{read, read_ptr},
    off,
};

/// Ancestors walked. A hierarchy deeper than this gives no limit (not a wrong one).
const MAX_LEVELS: u32 = 32;

/// `container_of(css, struct mem_cgroup, css)`.
#[inline(always)]
pub fn memcg_of_css(css: *const u8) -> Option<*const u8> {
    let o = off!(memcg_css);
    if o == ABSENT || css.is_null() {
        None
    } else {
        Some(css.wrapping_sub(o as usize))
    }
}

/// Fills `limit_pages`, `limit_usage_pages` and `limit_cgroup` of `r` from `task`'s memory
/// cgroup and its ancestors. Returns false (and leaves them unset) when any offset is unknown,
/// a read fails, or the root was not reached.
///
/// # Safety
/// `r` points to a reserved record; `task` may be anything (only probe reads).
#[inline(always)]
pub unsafe fn fill_limit(r: *mut VictimRecord, task: *const u8) -> bool {
    let counter = off!(memcg_memory);
    let max_off = off!(page_counter_max);
    let usage_off = off!(page_counter_usage);
    let parent_off = off!(css_parent);
    if counter == ABSENT || max_off == ABSENT || usage_off == ABSENT || parent_off == ABSENT {
        return false;
    }
    unsafe {
        let Some(cgroups) = read_ptr(task, off!(task_cgroups)) else {
            return false;
        };
        let Some(mut css) = cgroup::memory_css(cgroups) else {
            return false;
        };
        let mut best_max = u64::MAX;
        let mut best_usage = 0u64;
        let mut best_css: *const u8 = core::ptr::null();
        let mut reached_root = false;
        for _ in 0..MAX_LEVELS {
            let Some(memcg) = memcg_of_css(css) else {
                return false;
            };
            let pc = memcg.wrapping_add(counter as usize);
            let Some(max) = read::<u64>(pc, max_off) else {
                return false;
            };
            // Strictly tighter: with equal limits the one nearest the victim is reported.
            if max < best_max {
                best_max = max;
                best_usage =
                    read::<i64>(pc, usage_off).map_or(0, |u| if u < 0 { 0 } else { u as u64 });
                best_css = css;
            }
            let Some(parent) = read::<*const u8>(css, parent_off) else {
                return false;
            };
            if parent.is_null() {
                reached_root = true;
                break;
            }
            css = parent;
        }
        if !reached_root || best_css.is_null() {
            return false;
        }
        // Without its cgroup the limit would name no one: then report none.
        let Some(cg) = read_ptr(best_css, off!(css_cgroup)) else {
            return false;
        };
        if !cgroup::fill(&raw mut (*r).limit_cgroup, cg) {
            return false;
        }
        (*r).limit_pages = best_max;
        (*r).limit_usage_pages = best_usage;
        true
    }
}
