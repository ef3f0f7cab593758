//! The Contextual Anomaly Detector (CAD OSE), adapted to streams of unknown range.
//!
//! CAD OSE ("Open Source Edition", Mikhail Smirnov 2016, <https://github.com/smirmik/CAD>)
//! is the detector NAB ships as `context_ose` (numenta/NAB,
//! `nab/detectors/context_ose/`: `cad_ose.py`, `context_operator.py`,
//! `context_ose_detector.py`; NAB board 69.9 / 67.0 / 73.2). This module
//! re-implements it from those files; the differences are listed at the end.
//!
//! # The algorithm
//!
//! Each value is cut into one of `2^value_bits` bins of a value range: bin `n` is
//! `floor((x - min) / step)` with `step = (max - min) / (2^value_bits - 1)`, so the
//! top bin holds the maximum only. The bin number becomes a set of *sensor facts*,
//! one per bit `s`: `2s` when the bit is 0, `2s + 1` when it is 1 (3 bits: 3 facts).
//!
//! The model is a memory of *contexts*: a context is a pair (left facts, right
//! facts), "after the facts on the left, the facts on the right happened". Left facts
//! are the previous row's sensor facts plus *neuron facts* (the ids of the contexts
//! that were active on the previous row); right facts are sensor facts. Left and right
//! fact sets are stored once each ("semi-contexts") and shared between contexts. Each
//! row:
//!
//! 1. The *zero-level* context (all previous left facts, all current sensor facts)
//!    is looked up, and stored if it is new (the row is then "new").
//! 2. Every stored context whose left facts all hold (they are all among the previous
//!    left facts) is *selected*; it is *active* if its right facts all hold now too,
//!    and its activation count goes up. On a new row, each zero-level context whose
//!    left and right facts partly hold (and is not active) proposes a new context made
//!    of the parts that hold (left part of at most `max_left_len` facts).
//! 3. The `max_active_neurons` active contexts with the highest counts become the
//!    neuron facts of the next left facts; the proposals not yet stored are stored.
//! 4. The raw score is `(1 - active / selected + added / proposed) / 2`: high when
//!    little of what the contexts predicted happened and when much of what happened
//!    was new (`added / proposed` counts only on new rows; `proposed` counts distinct
//!    proposals, the zero-level context included, `added` those stored).
//! 5. A raw score of at least `rest_threshold` (0.75) starts a *rest period*: the
//!    scores of the next `rest_period` rows are reported as 0, so an anomaly gives one
//!    high score rather than a burst. The first `rest_period` rows are reported as 0
//!    too.
//!
//! Ties between active contexts of equal count are broken, as in the original, by the
//! hashes of their fact tuples (Python 3's tuple hash is reproduced).
//!
//! # Streaming: a value range that is not known in advance
//!
//! NAB hands the detector the minimum and maximum of the whole file before the first
//! row, and a rest period of a fifth of the file's probationary period (30 to 150 rows
//! depending on the file's length). A stream has neither; by default
//! ([`RangeMode::Adaptive`]) the bins cover the values seen so far:
//!
//! - The first value sets a range of zero width, whose bins are one unit wide (as in
//!   the original, where `max - min = 0` is replaced by `2^bits - 1`).
//! - A value whose bin falls outside the bins (below the minimum, or a bin width or
//!   more above the maximum) is scored first, by the current model, as a single
//!   "below" or "above" fact never seen before, so a new extreme looks new. Then the
//!   range is widened to the values seen so far plus `margin` times their spread on
//!   the side that was exceeded, and the model is *re-binned*: rebuilt from scratch
//!   and fed the last `history` values again under the new bins. Only the context
//!   memory is rebuilt; the rest period carries on. The margin makes widenings
//!   geometric, so a trending series re-bins about `ln(growth) / ln(1 + margin)` times
//!   rather than on every row. A range of zero width is widened as soon as a second,
//!   different value arrives.
//! - Memory is bounded: at most `history` values and about `max_contexts` (100,000)
//!   contexts per model. When the memory holds more contexts (a noisy stream stores
//!   several per row), the older three quarters of the history are dropped and the
//!   model rebuilt from the newest quarter (a rebuild replays those rows, so the
//!   smaller the part kept, the less a noisy stream spends replaying). With 3 value
//!   bits and the bound on proposers below, even uniform white noise levels off below
//!   the cap (about 75,000 contexts after 100,000 rows, 80,000 after a million): a
//!   lower cap (it was 20,000) made such a stream rebuild every 600 rows or so, each
//!   rebuild replaying 500, and kept 96 % of its rows new, where a model left to learn
//!   finds 2 % new.
//! - The work of a new row is bounded too: only the `max_proposers` (256) left
//!   semi-contexts with zero-level contexts stored last may propose contexts. In
//!   NAB's code every one of them may, so the cost of a new row grows with the memory
//!   (on white noise, by some 30 contexts a row up to the cap).
//! - The rest period is one fixed number of rows (20) for every stream.
//!
//! # Results on NAB
//!
//! NAB's official scorer (standard / reward low FP / reward low FN), one detector per
//! file, one configuration for all 58 files:
//!
//! | configuration                                             | standard | low FP | low FN |
//! |-----------------------------------------------------------|---------:|-------:|-------:|
//! | NAB's inputs (file min/max, NAB's rest), `nab_compat`     |    69.96 |  67.09 |  73.08 |
//! | streaming, defaults (rest 20, margin 0.05, history 2000)  |    71.88 |  63.97 |  76.66 |
//! | the same, every zero-level context proposes, rebuilt from the newer half | 71.82 | 63.81 | 76.62 |
//! | the same, 128 / 64 proposers                              | 71.01 / 69.30 | 63.34 / 62.50 | 75.79 / 74.35 |
//! | streaming, rest 30, margin 0                              |    68.40 |  58.64 |  73.76 |
//!
//! The first line is bit for bit what NAB's Python code gives (NAB's shipped
//! `contextOSE` results, from an older Python, score 69.90 / 66.98 / 73.18). The
//! rest period, margin and history were chosen on the whole corpus among 60 settings;
//! a two-fold cross-validation of that choice (choose on half the files, score the
//! other half) gives 69.5 and 69.9 on the held-out halves, so expect about 70 on data
//! it was not tuned on. The bound on proposers and the rebuild from the newest quarter
//! came later, for speed: they leave the corpus score where it was (second line) and
//! take the noisiest series from about 23,000 to 38,000 values per second of CPU on
//! one core (uniform white noise and NAB's `art_noisy`, which store contexts fastest;
//! 1.6x in the same run). The cap raised from 20,000 to 100,000 contexts (no NAB file
//! reaches either) and ranking the active contexts as they are counted (only the best
//! `2 * max_active_neurons` are kept, cut back to the best half when full) take white
//! noise to about 63,000 values per second over 100,000 rows (1.5x in the same run,
//! in process); over a fresh model's first 20,000 rows the higher cap costs about
//! 15 % (the model grows to some 60,000 contexts where the lower cap rebuilt it). Over
//! the corpus about 240,000 values per second; a model's snapshot is 44 kB for the
//! median NAB file, 325 kB at most; on white noise a model holds about 7.5 MB.
//!
//! # Differences from NAB's code
//!
//! - Semi-contexts are keyed by their fact sets, not by Python's hash of them (which
//!   could, very rarely, merge two).
//! - NAB's code crosses every semi-context with the current facts on every row; here
//!   the same sets are found through indexes (the left semi-contexts wholly among the
//!   previous left facts through their largest fact; the zero-level ones, only on new
//!   rows, through a bit mask of their sensor facts and lists per neuron fact). Right
//!   semi-contexts hold sensor facts only, so each is also kept as a bit mask: whether
//!   it holds, or partly holds, is one mask test. Each left semi-context keeps its
//!   contexts by right semi-context (a bit per right semi-context, the first 64), so
//!   its active contexts are the bits of the right semi-contexts that hold now and
//!   the others are only counted. A proposal's left part is the held sensor facts
//!   and the held neuron facts, a pair of bit masks over the row's facts, and its
//!   right part one of the few subsets of the row's sensor facts, so each distinct
//!   part is looked up once per row, not once per proposal. The results are the
//!   same; the cost per row no longer grows with the memory on rows that are not
//!   new.
//! - At most `max_proposers` zero-level left semi-contexts propose on a row, and a
//!   model at its context cap is rebuilt from part of the history (see above); NAB's
//!   code has no bounds. [`CadParams::nab_compat`] lifts the first.
//! - Python's `newContextID`, reset to `False`, compares equal to context id 0, so in
//!   NAB's code the first context stored never takes part (on a constant series the
//!   score then stays at 0.5 for ever). Here it takes part, unless
//!   [`CadParams::nab_compat`] is set.
//! - A rest period of 0 means no rest period (Python's `history[-0:]` slice would make
//!   every score 0).
//! - Values outside a fixed range, and non-finite values, are not in NAB's inputs: the
//!   former get the "below" / "above" facts, the latter are taken as the previous value.
//! - Several features: one model per feature; the score is the largest of theirs.

use std::collections::VecDeque;

use ahash::AHashMap;
use serde::{Deserialize, Serialize};

use super::{Detector, IntervalFeatures, Score};

/// A fact: a sensor fact (below [`NEURON`]: `2s + bit` for the bits of a bin number,
/// or [`BELOW`] / [`ABOVE`]) or a neuron fact (`NEURON + context id`).
type Fact = u32;

/// The first neuron fact.
const NEURON: Fact = 64;

/// The sensor fact of a value below the range.
const BELOW: Fact = 62;

/// The sensor fact of a value above the range (a bin width or more above the maximum).
const ABOVE: Fact = 63;

/// Most bits of the bin number (so that `2 * bits` sensor facts stay below [`BELOW`]).
const MAX_BITS: u32 = 16;

/// How the detector learns the value range its bins cover.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum RangeMode {
    /// A range known in advance (NAB gives the minimum and maximum of the whole file).
    Fixed {
        /// Smallest value.
        min: f64,
        /// Largest value.
        max: f64,
    },
    /// The range of the values seen so far, widened with a margin and re-binned when a
    /// value falls outside it (see the module docs).
    Adaptive,
}

/// Parameters of [`Cad`]. The defaults are CAD OSE's where it has them; the rest
/// period, margin and history were chosen on NAB (see the module docs). The default
/// `threshold` is about the one NAB's scorer chooses for the defaults (0.748).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CadParams {
    /// Reported score at and above which a row is anomalous (grade above 0).
    pub threshold: f64,
    /// Raw score at and above which a rest period starts (`baseThreshold`, 0.75).
    pub rest_threshold: f64,
    /// Rows after a raw score of at least `rest_threshold` whose scores are reported
    /// as 0 (`restPeriod`; NAB: a fifth of the probationary period, 30 to 150).
    pub rest_period: u32,
    /// Most facts in the left part of a proposed context
    /// (`maxLeftSemiContextsLenght`, 7).
    pub max_left_len: usize,
    /// Active contexts that become neuron facts (`maxActiveNeuronsNum`, 15).
    pub max_active_neurons: usize,
    /// Bits of the bin number (`numNormValueBits`, 3: 8 bins); 1 to 16.
    pub value_bits: u32,
    /// How the value range is learnt.
    pub range: RangeMode,
    /// Adaptive range: share of the spread added beyond a new extreme.
    pub margin: f64,
    /// Values kept to rebuild the model when it is re-binned.
    pub history: usize,
    /// Contexts per model above which the model is rebuilt from the newer quarter of
    /// the history (about 100 bytes each: bounds a model's memory).
    pub max_contexts: usize,
    /// Left semi-contexts with zero-level contexts that may propose on a new row: the
    /// most recently stored ones (0, or `nab_compat`: all, as in NAB's code). Bounds
    /// the proposal step's work per row, which otherwise grows with the memory.
    #[serde(default)]
    pub max_proposers: usize,
    /// Reproduce NAB's code exactly, including its quirk that context 0 never takes
    /// part (for comparisons; see the module docs).
    pub nab_compat: bool,
}

impl Default for CadParams {
    fn default() -> CadParams {
        CadParams {
            threshold: 0.75,
            rest_threshold: 0.75,
            rest_period: 20,
            max_left_len: 7,
            max_active_neurons: 15,
            value_bits: 3,
            range: RangeMode::Adaptive,
            margin: 0.05,
            history: 2000,
            max_contexts: 100_000,
            max_proposers: 256,
            nab_compat: false,
        }
    }
}

/// A context: a left and a right semi-context, serialised as a 4-tuple.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(from = "(u64, bool, u32, u32)", into = "(u64, bool, u32, u32)")]
struct Context {
    /// Times the context was active.
    count: u64,
    /// Whether it was ever a zero-level context (so may propose contexts).
    zero_level: bool,
    left: u32,
    right: u32,
}

impl From<(u64, bool, u32, u32)> for Context {
    fn from((count, zero_level, left, right): (u64, bool, u32, u32)) -> Context {
        Context {
            count,
            zero_level,
            left,
            right,
        }
    }
}

impl From<Context> for (u64, bool, u32, u32) {
    fn from(c: Context) -> (u64, bool, u32, u32) {
        (c.count, c.zero_level, c.left, c.right)
    }
}

/// The integer NAB's Python code has for fact `f` (neuron facts are `2 ** 31 + id`).
fn py_fact(f: Fact) -> u64 {
    if f >= NEURON {
        (1 << 31) + u64::from(f - NEURON)
    } else {
        u64::from(f)
    }
}

/// Python 3's `hash(tuple(facts))` (CPython 3.8+'s xxHash-based `tuplehash`; the
/// facts are integers below 2^61 - 1, which hash to themselves).
fn py_tuple_hash(facts: &[Fact]) -> i64 {
    const P1: u64 = 11_400_714_785_074_694_791;
    const P2: u64 = 14_029_467_366_897_019_727;
    const P5: u64 = 2_870_177_450_012_600_261;
    let mut acc = P5;
    for &f in facts {
        acc = acc.wrapping_add(py_fact(f).wrapping_mul(P2));
        acc = acc.rotate_left(31);
        acc = acc.wrapping_mul(P1);
    }
    acc = acc.wrapping_add((facts.len() as u64) ^ (P5 ^ 3_527_539));
    if acc == u64::MAX {
        1_546_275_796
    } else {
        acc as i64
    }
}

/// The bit of sensor fact `f` in a sensor mask.
fn sensor_bit(f: Fact) -> u64 {
    if f < NEURON { 1 << f } else { 0 }
}

/// The sensor facts of a sorted fact list as a bit mask.
fn sensor_mask(facts: &[Fact]) -> u64 {
    facts.iter().fold(0, |m, &f| m | sensor_bit(f))
}

/// A 64-bit signature of a fact set (one hashed bit per fact): a set whose signature
/// has a bit that another's lacks is not a subset of it.
fn signature(facts: &[Fact]) -> u64 {
    facts.iter().fold(0, |sig, &f| {
        sig | 1 << (u64::from(f).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58)
    })
}

/// Pushes `id` on list `i` of `lists`, growing it as needed.
fn push_at(lists: &mut Vec<Vec<u32>>, i: usize, id: u32) {
    if lists.len() <= i {
        lists.resize_with(i + 1, Vec::new);
    }
    lists[i].push(id);
}

/// A 64-bit hash of a fact list, with FxHash's step (rotate, xor the word, multiply;
/// rustc-hash's `FxHasher`).
fn fact_hash(facts: &[Fact]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let h = facts.iter().fold(facts.len() as u64, |h, &f| {
        (h.rotate_left(5) ^ u64::from(f)).wrapping_mul(K)
    });
    h ^ (h >> 32)
}

/// Semi-contexts by their facts: an open-addressing table (linear probing) of
/// (hash, id) whose hash matches are checked against the stored facts, so sets that
/// share a hash stay apart.
#[derive(Debug, Clone, Default)]
struct FactTable {
    /// (hash, id) per slot, `u32::MAX` ids empty; a power of two of slots, at most
    /// half of them used.
    slots: Vec<(u64, u32)>,
    len: usize,
}

impl FactTable {
    /// The first slot to probe for hash `h` (Fibonacci hashing of `h`).
    fn start(&self, h: u64) -> usize {
        let bits = self.slots.len().trailing_zeros();
        (h.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize
    }

    /// The id of the set `facts` (of hash `h`) among `semis`, if stored.
    fn get(&self, h: u64, facts: &[Fact], semis: &[Vec<Fact>]) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let wrap = self.slots.len() - 1;
        let mut i = self.start(h);
        loop {
            let (sh, id) = self.slots[i];
            if id == u32::MAX {
                return None;
            }
            if sh == h {
                let stored = &semis[id as usize];
                if stored.len() == facts.len() && stored.iter().zip(facts).all(|(a, b)| a == b) {
                    return Some(id);
                }
            }
            i = (i + 1) & wrap;
        }
    }

    /// Adds `id`, of hash `h` (not stored yet).
    fn insert(&mut self, h: u64, id: u32) {
        if 2 * (self.len + 1) > self.slots.len() {
            let size = (2 * self.slots.len()).max(16);
            let old = std::mem::replace(&mut self.slots, vec![(0, u32::MAX); size]);
            self.len = 0;
            for (oh, oid) in old.into_iter().filter(|s| s.1 != u32::MAX) {
                self.insert(oh, oid);
            }
        }
        let wrap = self.slots.len() - 1;
        let mut i = self.start(h);
        while self.slots[i].1 != u32::MAX {
            i = (i + 1) & wrap;
        }
        self.slots[i] = (h, id);
        self.len += 1;
    }
}

/// Right semi-contexts with an id below this are indexed by a bit in
/// [`LeftContexts::present`] (with 3 value bits there are at most 29 of them).
const LOW_RIGHTS: u32 = 64;

/// The contexts of one left semi-context, by right semi-context.
#[derive(Debug, Clone, Default)]
struct LeftContexts {
    /// Bit `r` set: a context (this left, right semi-context `r`) exists, `r` below
    /// [`LOW_RIGHTS`].
    present: u64,
    /// Those contexts in the order of `r` as (count, context): the one of `r` is at
    /// the rank of bit `r` in `present`. While the index is built, the counts are
    /// here, not in [`Model::contexts`] (where a selected left semi-context's loop
    /// would miss the cache).
    low: Vec<(u64, u32)>,
    /// Contexts of right semi-contexts from [`LOW_RIGHTS`] on: (count, right,
    /// context).
    high: Vec<(u64, u32, u32)>,
}

impl LeftContexts {
    /// Position of right semi-context `r` (below [`LOW_RIGHTS`]) in `low`.
    fn rank(&self, r: u32) -> usize {
        (self.present & ((1 << r) - 1)).count_ones() as usize
    }

    /// The context of right semi-context `r` (below [`LOW_RIGHTS`]).
    fn low_get(&self, r: u32) -> Option<u32> {
        (self.present >> r & 1 == 1).then(|| self.low[self.rank(r)].1)
    }
}

/// A left part of the row's proposals (see [`Model::left_part`]).
#[derive(Debug, Clone, Copy, Default)]
struct Part {
    /// The row it is of (`Index::row`; 0: empty).
    row: u32,
    /// Its left semi-context.
    id: u32,
    /// Its held sensor facts as a mask, and the positions of its neuron facts among
    /// the row's left facts as bits.
    sensors: u64,
    neurons: u64,
    /// The right semi-contexts (below [`LOW_RIGHTS`]) already proposed with it on the
    /// row, as bits: a repeat is neither stored nor a new distinct proposal.
    rights: u64,
}

/// A left semi-context with zero-level contexts, as the proposal scan reads it (in
/// one place rather than through its id).
#[derive(Debug, Clone, Copy)]
struct ZeroSemi {
    /// Its sensor mask.
    mask: u64,
    /// The left semi-context, and its number of facts.
    l: u32,
    len: u32,
    /// Its first zero-level context (context, right semi-context), and how many it
    /// has (all of them are in [`Index::zero`]).
    first: (u32, u32),
    n: u32,
}

/// Look-up tables and scratch space derived from the memory: rebuilt after a restore,
/// not serialised.
#[derive(Debug, Clone, Default)]
struct Index {
    built: bool,
    left_map: FactTable,
    /// Right semi-contexts by their sensor mask (which is their fact set).
    right_map: AHashMap<u64, u32>,
    /// Contexts whose right semi-context is [`LOW_RIGHTS`] or above, by (left, right).
    pairs: AHashMap<(u32, u32), u32>,
    /// Per left semi-context: its Python hash, sensor mask, and contexts.
    left_hash: Vec<i64>,
    left_mask: Vec<u64>,
    left_contexts: Vec<LeftContexts>,
    /// Per right semi-context: its Python hash and its facts as a sensor mask (right
    /// semi-contexts hold sensor facts only, so the mask is the set).
    right_hash: Vec<i64>,
    right_mask: Vec<u64>,
    /// Left semi-contexts by their largest fact, with their signatures: (signature,
    /// left semi-context).
    anchor: Vec<Vec<(u64, u32)>>,
    /// Per left semi-context, its zero-level contexts (context, right semi-context) in
    /// creation order.
    zero: Vec<Vec<(u32, u32)>>,
    /// Left semi-contexts with zero-level contexts, in creation order.
    zero_semis: Vec<ZeroSemi>,
    /// Those left semi-contexts by each of their neuron facts (index: context id).
    zero_by_neuron: Vec<Vec<u32>>,
    /// Scratch: neuron facts each left semi-context shares with the left facts, and
    /// their positions among the left facts as bits (when there are at most 64).
    shared: Vec<u32>,
    held_pos: Vec<u64>,
    /// The row's left parts in an open-addressing table; entries of other rows are
    /// empty.
    parts: Vec<Part>,
    /// Entries of `parts` added on this row, and the most on one row.
    parts_len: usize,
    parts_peak: usize,
    /// Per context, the last row (`row`) that proposed it: counts distinct proposals.
    proposed_at: Vec<u32>,
    /// Per fact, the last row whose previous left facts held it.
    held_at: Vec<u32>,
    /// Rows stepped since the index was built (wrapping; 0 is never a row).
    row: u32,
    scratch: Scratch,
}

/// An active context as it is ranked: (count, left hash, right hash, id).
type Ranked = (u64, i64, i64, u32);

/// Buffers reused from row to row.
#[derive(Debug, Clone, Default)]
struct Scratch {
    /// The highest-ranked active contexts so far (at most twice the neurons kept).
    active: Vec<Ranked>,
    /// Active contexts counted on the row.
    n_active: usize,
    /// A rank that at least `max_active_neurons` of those in `active` exceed or equal:
    /// an active context ranked below it cannot become a neuron fact.
    floor: Option<Ranked>,
    /// Proposed contexts as (left, right) semi-contexts whose held facts they take,
    /// grouped by left semi-context, and the positions of the neuron facts held in
    /// the left semi-context (the first 64) as bits.
    proposed: Vec<(u32, u32, u64)>,
    /// The row's right parts so far: (sensor mask, right semi-context).
    rights: Vec<(u64, u32)>,
    left: Vec<Fact>,
    right: Vec<Fact>,
    /// The left facts of the row before, reused for the next row's.
    next: Vec<Fact>,
}

impl Scratch {
    fn clear(&mut self) {
        self.active.clear();
        self.n_active = 0;
        self.floor = None;
        self.proposed.clear();
        self.rights.clear();
    }

    /// Counts an active context, and keeps it if it may be among the `k` highest
    /// ranked of the row (the ones [`Model::step`] makes neuron facts). Keeping at
    /// most `2k` and cutting back to the best `k` gives the same `k` as ranking them
    /// all, without storing them all.
    fn offer(&mut self, a: Ranked, k: usize) {
        self.n_active += 1;
        if self.floor.is_some_and(|f| a < f) {
            return;
        }
        self.active.push(a);
        if self.active.len() >= 2 * k {
            let cut = self.active.len() - k;
            self.active.select_nth_unstable(cut);
            self.active.drain(..cut);
            // The element selected at `cut` is now first, and no kept one ranks below it.
            self.floor = self.active.first().copied();
        }
    }
}

impl PartialEq for Index {
    /// Derived data: equal whenever the models are.
    fn eq(&self, _: &Index) -> bool {
        true
    }
}

/// One CAD model: the context memory of one value stream (CAD OSE's `ContextOperator`
/// and `ContextualAnomalyDetectorOSE.step`).
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "ModelState")]
struct Model {
    /// Facts of the left semi-contexts, sorted.
    left: Vec<Vec<Fact>>,
    /// Facts of the right semi-contexts, sorted.
    right: Vec<Vec<Fact>>,
    contexts: Vec<Context>,
    /// The previous row's left facts (sensor and neuron facts), sorted.
    left_facts: Vec<Fact>,
    #[serde(skip)]
    ix: Index,
}

/// [`Model`] as deserialised: checked by [`Model::try_from`] before it is used, so
/// a damaged or hand-edited snapshot is an error, not an index out of range.
#[derive(Deserialize)]
struct ModelState {
    left: Vec<Vec<Fact>>,
    right: Vec<Vec<Fact>>,
    contexts: Vec<Context>,
    left_facts: Vec<Fact>,
}

impl TryFrom<ModelState> for Model {
    type Error = String;

    /// What the steps index by holds: semi-context facts strictly increasing,
    /// right ones sensor facts, neuron facts naming stored contexts; every
    /// context's semi-contexts stored, and no pair stored twice.
    fn try_from(m: ModelState) -> Result<Model, String> {
        let contexts = m.contexts.len();
        let fact_ok = |f: Fact| f < NEURON || ((f - NEURON) as usize) < contexts;
        let facts_ok = |facts: &[Fact], neurons: bool| {
            facts.windows(2).all(|w| w[0] < w[1])
                && facts.iter().all(|&f| fact_ok(f) && (neurons || f < NEURON))
        };
        if let Some(i) = m.left.iter().position(|f| !facts_ok(f, true)) {
            return Err(format!("cad model: left semi-context {i} has bad facts"));
        }
        if let Some(i) = m.right.iter().position(|f| !facts_ok(f, false)) {
            return Err(format!("cad model: right semi-context {i} has bad facts"));
        }
        if !facts_ok(&m.left_facts, true) {
            return Err("cad model: bad facts of the last row".into());
        }
        let mut pairs = std::collections::HashSet::with_capacity(contexts);
        for (i, c) in m.contexts.iter().enumerate() {
            if c.left as usize >= m.left.len()
                || c.right as usize >= m.right.len()
                || !pairs.insert((c.left, c.right))
            {
                return Err(format!(
                    "cad model: context {i} names semi-contexts ({}, {}) that are not stored, or stored twice",
                    c.left, c.right
                ));
            }
        }
        Ok(Model {
            left: m.left,
            right: m.right,
            contexts: m.contexts,
            left_facts: m.left_facts,
            ix: Index::default(),
        })
    }
}

/// [`Model`] as serialised (the fields in the same order).
#[derive(Serialize)]
struct ModelView<'a> {
    left: &'a [Vec<Fact>],
    right: &'a [Vec<Fact>],
    contexts: Vec<Context>,
    left_facts: &'a [Fact],
}

impl Serialize for Model {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ModelView {
            left: &self.left,
            right: &self.right,
            contexts: self.contexts_now(),
            left_facts: &self.left_facts,
        }
        .serialize(s)
    }
}

impl PartialEq for Model {
    fn eq(&self, other: &Model) -> bool {
        self.left == other.left
            && self.right == other.right
            && self.left_facts == other.left_facts
            && self.contexts_now() == other.contexts_now()
    }
}

impl Model {
    /// The contexts with their current counts (kept in the index while it is built).
    fn contexts_now(&self) -> Vec<Context> {
        let mut contexts = self.contexts.clone();
        if self.ix.built {
            for lc in &self.ix.left_contexts {
                for &(count, c) in &lc.low {
                    contexts[c as usize].count = count;
                }
                for &(count, _, c) in &lc.high {
                    contexts[c as usize].count = count;
                }
            }
        }
        contexts
    }

    fn new() -> Model {
        Model {
            left: Vec::new(),
            right: Vec::new(),
            contexts: Vec::new(),
            left_facts: Vec::new(),
            ix: Index::default(),
        }
    }

    /// Registers left semi-context `id`.
    fn index_left(ix: &mut Index, id: u32, facts: &[Fact]) {
        ix.left_map.insert(fact_hash(facts), id);
        if let Some(&last) = facts.last() {
            let at = last as usize;
            if ix.anchor.len() <= at {
                ix.anchor.resize_with(at + 1, Vec::new);
            }
            ix.anchor[at].push((signature(facts), id));
        }
        ix.left_hash.push(py_tuple_hash(facts));
        ix.left_mask.push(sensor_mask(facts));
        ix.left_contexts.push(LeftContexts::default());
        ix.zero.push(Vec::new());
        ix.shared.push(0);
        ix.held_pos.push(0);
    }

    /// Registers right semi-context `id`.
    fn index_right(ix: &mut Index, id: u32, facts: &[Fact]) {
        ix.right_map.insert(sensor_mask(facts), id);
        ix.right_hash.push(py_tuple_hash(facts));
        ix.right_mask.push(sensor_mask(facts));
    }

    /// Registers context `c` of left semi-context `l` and right semi-context `r`.
    fn index_pair(ix: &mut Index, l: u32, r: u32, c: u32, count: u64) {
        let lc = &mut ix.left_contexts[l as usize];
        if r < LOW_RIGHTS {
            let at = lc.rank(r);
            lc.low.insert(at, (count, c));
            lc.present |= 1 << r;
        } else {
            lc.high.push((count, r, c));
            ix.pairs.insert((l, r), c);
        }
    }

    /// The context of left semi-context `l` and right semi-context `r`, if stored.
    fn find_pair(ix: &Index, l: u32, r: u32) -> Option<u32> {
        if r < LOW_RIGHTS {
            ix.left_contexts[l as usize].low_get(r)
        } else {
            ix.pairs.get(&(l, r)).copied()
        }
    }

    /// Registers context `c` (right semi-context `r`) as a zero-level one of left
    /// semi-context `l`.
    fn index_zero(ix: &mut Index, left: &[Vec<Fact>], l: u32, c: u32, r: u32) {
        let zero = &mut ix.zero[l as usize];
        let at = ix.zero_semis.partition_point(|z| z.l < l);
        if zero.is_empty() {
            let facts = &left[l as usize];
            ix.zero_semis.insert(
                at,
                ZeroSemi {
                    mask: ix.left_mask[l as usize],
                    l,
                    len: facts.len() as u32,
                    first: (c, r),
                    n: 0,
                },
            );
            for &f in facts.iter().filter(|&&f| f >= NEURON) {
                push_at(&mut ix.zero_by_neuron, (f - NEURON) as usize, l);
            }
        }
        let pos = zero.partition_point(|&(x, _)| x < c);
        zero.insert(pos, (c, r));
        let z = &mut ix.zero_semis[at];
        z.first = zero[0];
        z.n = zero.len() as u32;
    }

    /// Builds the index (of a fresh or restored model).
    fn ensure_index(&mut self) {
        if self.ix.built {
            return;
        }
        let mut ix = Index {
            built: true,
            ..Index::default()
        };
        for (id, facts) in self.left.iter().enumerate() {
            Self::index_left(&mut ix, id as u32, facts);
        }
        for (id, facts) in self.right.iter().enumerate() {
            Self::index_right(&mut ix, id as u32, facts);
        }
        for (id, c) in self.contexts.iter().enumerate() {
            Self::index_pair(&mut ix, c.left, c.right, id as u32, c.count);
            if c.zero_level {
                Self::index_zero(&mut ix, &self.left, c.left, id as u32, c.right);
            }
        }
        ix.proposed_at = vec![0; self.contexts.len()];
        self.ix = ix;
    }

    /// The left (`true`) or right semi-context with `facts`, stored if new.
    fn semi_id(&mut self, left_side: bool, facts: &[Fact]) -> u32 {
        let found = if left_side {
            self.ix.left_map.get(fact_hash(facts), facts, &self.left)
        } else {
            self.ix.right_map.get(&sensor_mask(facts)).copied()
        };
        if let Some(id) = found {
            return id;
        }
        if left_side {
            let id = self.left.len() as u32;
            self.left.push(facts.to_vec());
            Self::index_left(&mut self.ix, id, facts);
            id
        } else {
            let id = self.right.len() as u32;
            self.right.push(facts.to_vec());
            Self::index_right(&mut self.ix, id, facts);
            id
        }
    }

    /// `getContextByFacts` for one context: (context id, whether it was stored now).
    fn context(&mut self, left: &[Fact], right: &[Fact], zero_level: bool) -> (u32, bool) {
        let l = self.semi_id(true, left);
        let r = self.semi_id(false, right);
        self.context_of(l, r, zero_level)
    }

    /// [`Model::context`] for stored semi-contexts `l` and `r`.
    fn context_of(&mut self, l: u32, r: u32, zero_level: bool) -> (u32, bool) {
        if let Some(c) = Self::find_pair(&self.ix, l, r) {
            let ctx = &mut self.contexts[c as usize];
            if zero_level && !ctx.zero_level {
                ctx.zero_level = true;
                Self::index_zero(&mut self.ix, &self.left, l, c, r);
            }
            return (c, false);
        }
        let c = self.contexts.len() as u32;
        self.contexts.push(Context {
            count: 0,
            zero_level,
            left: l,
            right: r,
        });
        Self::index_pair(&mut self.ix, l, r, c, 0);
        self.ix.proposed_at.push(0);
        if zero_level {
            Self::index_zero(&mut self.ix, &self.left, l, c, r);
        }
        (c, true)
    }

    /// Marks context `c` proposed on this row: whether it was not yet.
    fn first_proposal(&mut self, c: u32) -> bool {
        let at = &mut self.ix.proposed_at[c as usize];
        let first = *at != self.ix.row;
        *at = self.ix.row;
        first
    }

    /// The right semi-context of the sensor facts in `part` (a sensor mask), through
    /// `cache`, the row's right semi-contexts by mask.
    fn right_part(&mut self, part: u64, cache: &mut Vec<(u64, u32)>, buf: &mut Vec<Fact>) -> u32 {
        if let Some(&(_, id)) = cache.iter().find(|&&(m, _)| m == part) {
            return id;
        }
        buf.clear();
        buf.extend((0..NEURON).filter(|&f| sensor_bit(f) & part != 0));
        let id = self.semi_id(false, buf);
        cache.push((part, id));
        id
    }

    /// The left semi-context of the sensor facts in `sensors` (a mask) and the facts
    /// of `left_facts` (at most 64) at the positions in `neurons`, through the row's
    /// table of left parts: (left semi-context, its entry in the table or
    /// `usize::MAX`).
    fn left_part(
        &mut self,
        sensors: u64,
        neurons: u64,
        left_facts: &[Fact],
        buf: &mut Vec<Fact>,
    ) -> (u32, usize) {
        let row = self.ix.row;
        let size = self.ix.parts.len();
        let wrap = size - 1;
        let h = (sensors ^ neurons.wrapping_mul(0x517c_c1b7_2722_0a95))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut i = (h >> 32) as usize & wrap;
        while self.ix.parts[i].row == row {
            let p = &self.ix.parts[i];
            if p.sensors == sensors && p.neurons == neurons {
                return (p.id, i);
            }
            i = (i + 1) & wrap;
        }
        buf.clear();
        let mut bits = sensors;
        while bits != 0 {
            buf.push(bits.trailing_zeros());
            bits &= bits - 1;
        }
        let mut bits = neurons;
        while bits != 0 {
            buf.push(left_facts[bits.trailing_zeros() as usize]);
            bits &= bits - 1;
        }
        let id = self.semi_id(true, buf);
        // At most half the table is used on a row; a fuller row grows it for the next.
        self.ix.parts_peak = self.ix.parts_peak.max(self.ix.parts_len + 1);
        if 2 * (self.ix.parts_len + 1) <= size {
            self.ix.parts[i] = Part {
                row,
                id,
                sensors,
                neurons,
                rights: 0,
            };
            self.ix.parts_len += 1;
            (id, i)
        } else {
            (id, usize::MAX)
        }
    }

    /// One row with sensor facts `sens` (sorted, distinct, not empty): the raw anomaly
    /// score in [0, 1]; then learns the row.
    fn step(&mut self, sens: &[Fact], params: &CadParams) -> f64 {
        self.ensure_index();
        self.ix.row = self.ix.row.wrapping_add(1).max(1);
        if self.ix.row == 1 {
            self.ix.proposed_at.fill(0);
            self.ix.held_at.fill(0);
            self.ix.parts.fill(Part::default());
        }
        let want = (4 * self.ix.parts_peak).next_power_of_two().max(64);
        if self.ix.parts.len() < want {
            self.ix.parts = vec![Part::default(); want];
        }
        self.ix.parts_len = 0;
        // Right semi-contexts hold sensor facts only: one holds when its mask is within
        // the row's, and partly holds when the two meet.
        let sens_mask = sensor_mask(sens);
        // Left semi-contexts stored from here on were not crossed with the previous
        // left facts in NAB's code, so they take no part in this row.
        let boundary = self.left.len() as u32;
        let left_facts = std::mem::take(&mut self.left_facts);
        let mut scratch = std::mem::take(&mut self.ix.scratch);
        scratch.clear();
        let row = self.ix.row;
        if let Some(&top) = left_facts.last() {
            if self.ix.held_at.len() <= top as usize {
                self.ix.held_at.resize(top as usize + 1, 0);
            }
        }
        for &f in &left_facts {
            self.ix.held_at[f as usize] = row;
        }
        let held_at = |ix: &Index, f: Fact| ix.held_at.get(f as usize) == Some(&row);
        // The zero-level context's id if stored now, which takes no part in this row;
        // otherwise none, or context 0 in NAB's code (Python's `False == 0`).
        let mut new_context = if params.nab_compat { 0 } else { u32::MAX };
        // Distinct contexts proposed (the zero-level one included).
        let mut distinct = 0_usize;
        let new_row = !left_facts.is_empty() && {
            let (c, stored) = self.context(&left_facts, sens, true);
            distinct += usize::from(self.first_proposal(c));
            if stored {
                new_context = c;
            }
            stored
        };

        // Selected and active contexts: those of the left semi-contexts wholly among the
        // previous left facts, each found once, under its largest fact.
        // The right semi-contexts below LOW_RIGHTS that hold, as bits; a selected left
        // semi-context's active contexts are those of its present rights among them.
        let mut holds = 0_u64;
        for (r, &m) in self
            .ix
            .right_mask
            .iter()
            .take(LOW_RIGHTS as usize)
            .enumerate()
        {
            if m & !sens_mask == 0 {
                holds |= 1 << r;
            }
        }
        // The context that takes no part, and its left semi-context.
        let skip_left = self
            .contexts
            .get(new_context as usize)
            .map_or(u32::MAX, |c| c.left);
        let mut selected = 0_usize;
        let k = params.max_active_neurons;
        let sig = signature(&left_facts);
        for &f in &left_facts {
            for &(lsig, l) in self.ix.anchor.get(f as usize).map_or(&[][..], |v| &v[..]) {
                if lsig & !sig != 0
                    || l >= boundary
                    || !self.left[l as usize].iter().all(|&f| held_at(&self.ix, f))
                {
                    continue;
                }
                let lc = &mut self.ix.left_contexts[l as usize];
                selected += lc.low.len() + lc.high.len() - usize::from(l == skip_left);
                let lh = self.ix.left_hash[l as usize];
                let mut bits = lc.present & holds;
                while bits != 0 {
                    let r = bits.trailing_zeros();
                    bits &= bits - 1;
                    let at = lc.rank(r);
                    let (count, c) = &mut lc.low[at];
                    if *c == new_context {
                        continue;
                    }
                    *count += 1;
                    let rh = self.ix.right_hash[r as usize];
                    scratch.offer((*count, lh, rh, *c), k);
                }
                for (count, r, c) in &mut lc.high {
                    if *c != new_context && self.ix.right_mask[*r as usize] & !sens_mask == 0 {
                        *count += 1;
                        let rh = self.ix.right_hash[*r as usize];
                        scratch.offer((*count, lh, rh, *c), k);
                    }
                }
            }
        }
        let active_share = if selected > 0 {
            scratch.n_active as f64 / selected as f64
        } else {
            0.0
        };

        // Proposals, only on a new row: from the zero-level contexts whose left and
        // right facts partly hold. `shared` counts the neuron facts held, `held_pos`
        // marks which of the left facts they are.
        if new_row {
            let mask = sensor_mask(&left_facts);
            let neurons = || left_facts.iter().enumerate().filter(|&(_, &f)| f >= NEURON);
            for (pos, &f) in neurons() {
                if let Some(list) = self.ix.zero_by_neuron.get((f - NEURON) as usize) {
                    for &l in list {
                        self.ix.shared[l as usize] += 1;
                        if pos < 64 {
                            self.ix.held_pos[l as usize] |= 1 << pos;
                        }
                    }
                }
            }
            let zero_semis = &self.ix.zero_semis;
            // NAB's code lets every zero-level context propose.
            let most = if params.nab_compat {
                0
            } else {
                params.max_proposers
            };
            let from = match most {
                0 => 0,
                most => zero_semis
                    .partition_point(|z| z.l < boundary)
                    .saturating_sub(most),
            };
            for z in &zero_semis[from..] {
                let l = z.l;
                if l >= boundary {
                    break;
                }
                let held =
                    (z.mask & mask).count_ones() as usize + self.ix.shared[l as usize] as usize;
                if held == 0 || held > params.max_left_len {
                    continue;
                }
                let full = held == z.len as usize;
                let neurons = self.ix.held_pos[l as usize];
                let zero = if z.n == 1 {
                    std::slice::from_ref(&z.first)
                } else {
                    &self.ix.zero[l as usize][..]
                };
                for &(c, r) in zero {
                    let right = self.ix.right_mask[r as usize];
                    if c == new_context
                        || right & sens_mask == 0
                        || (full && right & !sens_mask == 0)
                    {
                        continue;
                    }
                    scratch.proposed.push((l, r, neurons));
                }
            }
            for (_, &f) in neurons() {
                if let Some(list) = self.ix.zero_by_neuron.get((f - NEURON) as usize) {
                    for &l in list {
                        self.ix.shared[l as usize] = 0;
                        self.ix.held_pos[l as usize] = 0;
                    }
                }
            }
        }

        // The most active contexts become the neuron facts of the next left facts.
        let active = &mut scratch.active;
        if active.len() > k {
            let cut = active.len() - k;
            active.select_nth_unstable(cut);
            active.drain(..cut);
        }
        let mut next = std::mem::take(&mut scratch.next);
        next.clear();
        next.extend_from_slice(sens);
        next.extend(active.iter().map(|a| NEURON + a.3));
        next.sort_unstable();
        self.left_facts = next;

        // Store the proposals, in order. A proposal's left part depends on its left
        // semi-context only, and its right part is one of the few subsets of the row's
        // sensor facts, so each is looked up once per row.
        let mut added = usize::from(new_row);
        let left_mask = sensor_mask(&left_facts);
        let mut last = (u32::MAX, 0, usize::MAX);
        for i in 0..scratch.proposed.len() {
            let (l, r, neurons) = scratch.proposed[i];
            if last.0 != l {
                // The left part: the held sensor facts (a mask) and the neuron facts
                // at the held positions of the left facts, the same for many left
                // semi-contexts, so looked up once per row.
                let sensors = self.ix.left_mask[l as usize] & left_mask;
                let (id, slot) = if left_facts.len() > 64 {
                    scratch.left.clear();
                    let facts = self.left[l as usize].iter().copied();
                    scratch.left.extend(facts.filter(|&f| held_at(&self.ix, f)));
                    (self.semi_id(true, &scratch.left), usize::MAX)
                } else {
                    self.left_part(sensors, neurons, &left_facts, &mut scratch.left)
                };
                last = (l, id, slot);
            }
            let part = self.ix.right_mask[r as usize] & sens_mask;
            let right = self.right_part(part, &mut scratch.rights, &mut scratch.right);
            // The same (left part, right part) again on this row: the context is
            // stored and proposed already.
            if right < LOW_RIGHTS && last.2 != usize::MAX {
                let rights = &mut self.ix.parts[last.2].rights;
                if *rights >> right & 1 == 1 {
                    continue;
                }
                *rights |= 1 << right;
            }
            let (c, stored) = self.context_of(last.1, right, false);
            added += usize::from(stored);
            distinct += usize::from(self.first_proposal(c));
        }
        let added_share = if new_row {
            added as f64 / distinct as f64
        } else {
            0.0
        };
        scratch.next = left_facts;
        self.ix.scratch = scratch;
        (1.0 - active_share + added_share) / 2.0
    }

    /// Approximate heap bytes of the model and its index.
    fn memory_bytes(&self) -> usize {
        let facts = |v: &Vec<Vec<Fact>>| -> usize { v.iter().map(|f| 24 + 4 * f.len()).sum() };
        // Semi-contexts are held twice (memory and look-up map); maps and lists cost
        // about 2x their entries.
        2 * (facts(&self.left) + facts(&self.right))
            + self.contexts.len() * (24 + 2 * 12 + 8 + 8 + 4 + 4)
            + self.left.len() * (8 + 8 + 8 + 24 + 24 + 4 + 1)
            + self.right.len() * (8 + 8)
    }
}

/// The sensor facts of bin number `n` out of `2^bits` bins (see the module docs).
fn sensor_facts(n: i64, bits: u32, out: &mut Vec<Fact>) {
    out.clear();
    if n < 0 {
        out.push(BELOW);
    } else if n >= 1 << bits {
        out.push(ABOVE);
    } else {
        out.extend((0..bits).map(|s| 2 * s + ((n >> s) & 1) as Fact));
    }
}

/// The per-feature state of [`Cad`]: a model, its range and history, the rest period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Stream {
    model: Model,
    /// The range the bins cover (`None` before the first finite value).
    range: Option<(f64, f64)>,
    /// Smallest and largest value seen (adaptive range).
    seen: Option<(f64, f64)>,
    /// The last `history` values.
    history: VecDeque<f64>,
    /// The last finite value.
    last: f64,
    /// Raw scores since the last one at or above `rest_threshold` (the state before the
    /// first row counts as one).
    since_high: u64,
    /// Rows since the model was last rebuilt.
    since_rebuild: u64,
}

impl Stream {
    fn new(params: &CadParams) -> Stream {
        Stream {
            model: Model::new(),
            range: match params.range {
                RangeMode::Fixed { min, max } => Some((min, max)),
                RangeMode::Adaptive => None,
            },
            seen: None,
            history: VecDeque::new(),
            last: 0.0,
            since_high: 0,
            since_rebuild: 0,
        }
    }

    /// Bin number of `x` (Python's `int((x - min) / step)`, rounded down below the
    /// range too); 0 for a NaN quotient.
    fn bin(x: f64, (min, max): (f64, f64), bits: u32) -> i64 {
        let top = ((1_u64 << bits) - 1) as f64;
        let width = if max - min > 0.0 { max - min } else { top };
        let n = ((x - min) / (width / top)).floor();
        if n.is_nan() {
            0
        } else {
            n.clamp(-1.0, top + 1.0) as i64
        }
    }

    /// The model's raw score of `x` under `range`, then learns it.
    fn learn(model: &mut Model, x: f64, range: (f64, f64), params: &CadParams) -> f64 {
        let mut sens = Vec::with_capacity(params.value_bits as usize);
        sensor_facts(
            Self::bin(x, range, params.value_bits),
            params.value_bits,
            &mut sens,
        );
        model.step(&sens, params)
    }

    /// Rebuilds the model from the history under the current range.
    fn rebuild(&mut self, params: &CadParams) {
        let range = self.range.unwrap_or((0.0, 0.0));
        let mut model = Model::new();
        for &x in &self.history {
            Self::learn(&mut model, x, range, params);
        }
        self.model = model;
        self.since_rebuild = 0;
    }

    /// The raw score of `x` (before the rest period), then learns it.
    fn process(&mut self, x: f64, params: &CadParams) -> f64 {
        let x = if x.is_finite() { x } else { self.last };
        let range = *self.range.get_or_insert((x, x));
        let raw = Self::learn(&mut self.model, x, range, params);
        self.last = x;
        self.since_rebuild += 1;
        self.history.push_back(x);
        while self.history.len() > params.history.max(1) {
            self.history.pop_front();
        }
        let (lo, hi) = self.seen.map_or((x, x), |(a, b)| (a.min(x), b.max(x)));
        self.seen = Some((lo, hi));
        let (min, max) = range;
        let n = Self::bin(x, range, params.value_bits);
        let outside = n < 0 || n >= 1 << params.value_bits || (max <= min && hi > lo);
        if params.range == RangeMode::Adaptive && outside {
            let pad = params.margin.max(0.0) * (hi - lo);
            let widened = (
                if x < min { lo - pad } else { lo.min(min) },
                if x > max { hi + pad } else { hi.max(max) },
            );
            self.range = Some(if widened.0.is_finite() && widened.1.is_finite() {
                widened
            } else {
                (lo, hi)
            });
            self.rebuild(params);
        } else if self.model.contexts.len() > params.max_contexts && self.history.len() > 1 {
            let keep = self.history.len().div_ceil(4);
            self.history.drain(..self.history.len() - keep);
            self.rebuild(params);
        }
        raw
    }
}

/// The CAD OSE detector (see the module docs): one model per feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "CadState")]
pub struct Cad {
    params: CadParams,
    streams: Vec<Stream>,
    seen: u64,
}

/// [`Cad`] as deserialised: its parameters are brought into range as
/// [`Cad::new`] does, so a snapshot edited by hand cannot make a step index out of
/// range (no active context kept, bins past the sensor facts).
#[derive(Deserialize)]
struct CadState {
    params: CadParams,
    streams: Vec<Stream>,
    seen: u64,
}

impl From<CadState> for Cad {
    fn from(s: CadState) -> Cad {
        Cad {
            params: normalized(s.params),
            streams: s.streams,
            seen: s.seen,
        }
    }
}

/// `params` with `value_bits` in 1..=16 and `max_active_neurons` at least 1.
fn normalized(params: CadParams) -> CadParams {
    CadParams {
        value_bits: params.value_bits.clamp(1, MAX_BITS),
        max_active_neurons: params.max_active_neurons.max(1),
        ..params
    }
}

impl Cad {
    /// A detector for `features` features (at least 1); `value_bits` is brought into
    /// 1..=16 and `max_active_neurons` to at least 1.
    pub fn new(params: CadParams, features: usize) -> Cad {
        let params = normalized(params);
        Cad {
            streams: (0..features.max(1)).map(|_| Stream::new(&params)).collect(),
            params,
            seen: 0,
        }
    }

    /// The parameters in force.
    pub fn params(&self) -> &CadParams {
        &self.params
    }

    /// Contexts stored, per feature.
    pub fn contexts(&self) -> Vec<usize> {
        self.streams
            .iter()
            .map(|s| s.model.contexts.len())
            .collect()
    }

    /// Approximate heap bytes of the detector (models, their indexes, histories).
    pub fn memory_bytes(&self) -> usize {
        self.streams
            .iter()
            .map(|s| s.model.memory_bytes() + 8 * s.history.len() + 4 * s.model.left_facts.len())
            .sum()
    }
}

impl Detector for Cad {
    fn process(&mut self, interval: &IntervalFeatures<'_>) -> Score {
        let params = self.params;
        let mut expected = Vec::with_capacity(self.streams.len());
        let scores: Vec<f64> = self
            .streams
            .iter_mut()
            .enumerate()
            .map(|(i, s)| {
                expected.push(s.last);
                let x = interval.values.get(i).copied().unwrap_or(0.0);
                let raw = s.process(x, &params);
                let rested = s.since_high < u64::from(params.rest_period);
                s.since_high = if raw >= params.rest_threshold {
                    0
                } else {
                    s.since_high.saturating_add(1)
                };
                if rested { 0.0 } else { raw }
            })
            .collect();
        self.seen += 1;
        let score = scores.iter().copied().fold(0.0, f64::max);
        let total: f64 = scores.iter().sum();
        let n = scores.len() as f64;
        let attribution = scores
            .iter()
            .map(|s| if total > 0.0 { s / total } else { 1.0 / n })
            .collect();
        let t = params.threshold;
        let grade = if score >= t && t < 1.0 {
            ((score - t) / (1.0 - t)).clamp(0.0, 1.0)
        } else {
            0.0
        };
        Score {
            anomaly_score: score,
            anomaly_grade: grade,
            confidence: 1.0 - (-(self.seen as f64) / 10.0).exp(),
            threshold: t,
            expected,
            attribution,
            shifted_categories: Vec::new(),
            band: Vec::new(),
        }
    }

    fn snapshot(&self) -> Option<serde_json::Value> {
        serde_json::to_value(self).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::testutil::{counts, feed};

    fn scores(d: &mut Cad, series: &[f64]) -> Vec<f64> {
        feed(d, series).iter().map(|s| s.anomaly_score).collect()
    }

    #[test]
    fn python_tuple_hash() {
        // hash(()), hash((1, 2, 3)), hash((2 ** 31 + 5,)) under CPython 3.11.
        assert_eq!(py_tuple_hash(&[]), 5_740_354_900_026_072_187);
        assert_eq!(py_tuple_hash(&[1, 2, 3]), 529_344_067_295_497_451);
        assert_eq!(py_tuple_hash(&[NEURON + 5]), -4_741_278_100_396_860_717);
    }

    #[test]
    fn reproduces_nab_with_a_fixed_range() {
        // NAB's cad_ose.py (Python 3.11) on this series, minValue 0, maxValue 9.5,
        // restPeriod 5: the scores of rows 15.., 60 and 70 (rows 0..15 are 0).
        let mut xs: Vec<f64> = (0..60).map(|i| f64::from((i * 7) % 10)).collect();
        xs.extend([3.0; 10]);
        xs.push(9.5);
        xs.extend((0..29).map(|i| f64::from((i * 7) % 10)));
        let params = CadParams {
            range: RangeMode::Fixed { min: 0.0, max: 9.5 },
            rest_period: 5,
            nab_compat: true,
            ..CadParams::default()
        };
        let mut d = Cad::new(params, 1);
        let s = scores(&mut d, &xs);
        assert!(s[..15].iter().all(|&x| x == 0.0));
        let expected = [
            (15, 0.271_428_571_428_571_46),
            (16, 0.293_650_793_650_793_66),
            (17, 0.45),
            (23, 0.143_540_669_856_459_33),
            (59, 0.081_249_999_999_999_99),
            (60, 0.913_043_478_260_869_6),
            (66, 0.2375),
            (70, 1.0),
            (76, 0.272_556_390_977_443_6),
            (99, 0.083_333_333_333_333_31),
        ];
        for (i, want) in expected {
            assert_eq!(s[i], want, "row {i}");
        }
        assert!(s[61..66].iter().all(|&x| x == 0.0), "rest period");
        assert_eq!(d.contexts(), vec![204]);
    }

    #[test]
    fn flags_a_jump_after_a_constant_series() {
        let mut xs = vec![5.0; 300];
        xs.push(50.0);
        xs.extend([5.0; 50]);
        let mut d = Cad::new(CadParams::default(), 1);
        let r = feed(&mut d, &xs);
        let quiet = |s: &Score| s.anomaly_score < 0.1 && s.anomaly_grade == 0.0;
        assert!(
            r[40..300].iter().all(quiet),
            "{:?}",
            r[..300]
                .iter()
                .map(|s| s.anomaly_score)
                .enumerate()
                .filter(|x| x.1 > 0.0)
                .collect::<Vec<_>>()
        );
        assert_eq!(r[300].anomaly_score, 1.0);
        assert_eq!(r[300].anomaly_grade, 1.0);
        assert_eq!(r[300].expected, vec![5.0]);
        // The rest period mutes what follows.
        assert!(r[301..321].iter().all(|s| s.anomaly_score == 0.0));
    }

    #[test]
    fn learns_a_repeating_pattern() {
        let period = [0.0, 2.0, 5.0, 9.0, 4.0, 1.0, 7.0, 3.0];
        let xs: Vec<f64> = (0..1600).map(|i| period[i % period.len()]).collect();
        let mut d = Cad::new(CadParams::default(), 1);
        let s = scores(&mut d, &xs);
        // Later repetitions are predicted.
        assert!(s[800..].iter().all(|&x| x < 0.3), "{:?}", &s[800..816]);
        // A break in the pattern is flagged.
        let mut broken = xs.clone();
        broken[1500] = 8.0;
        let s = scores(&mut Cad::new(CadParams::default(), 1), &broken);
        assert!(s[1500] >= 0.75, "{}", s[1500]);
    }

    #[test]
    fn snapshot_round_trip_continues_identically() {
        let mut xs = counts(3000, 40.0, 7);
        for x in &mut xs[1800..1810] {
            *x += 200.0;
        }
        xs[2500] = -30.0;
        let mut d = Cad::new(CadParams::default(), 2);
        let series2 = |x: f64| [x, 100.0 - x];
        let run = |d: &mut Cad, xs: &[f64], from: usize| -> Vec<Score> {
            xs.iter()
                .enumerate()
                .map(|(i, &x)| {
                    d.process(&IntervalFeatures {
                        start_ms: (from + i) as i64,
                        end_ms: (from + i + 1) as i64,
                        values: &series2(x),
                        categories: &[],
                    })
                })
                .collect()
        };
        run(&mut d, &xs[..1500], 0);
        let state = d.snapshot().unwrap();
        let text = serde_json::to_string(&state).unwrap();
        let mut restored: Cad = serde_json::from_str(&text).unwrap();
        assert_eq!(restored, d);
        let a = run(&mut d, &xs[1500..], 1500);
        let b = run(&mut restored, &xs[1500..], 1500);
        assert_eq!(a, b);
        assert!(a[300].anomaly_grade > 0.0, "{:?}", a[300]);
        assert_eq!(restored.snapshot(), d.snapshot());
        // A snapshot edited to out-of-range parameters restores with them brought
        // into range, as `Cad::new` would, and goes on scoring.
        let mut edited = d.snapshot().unwrap();
        edited["params"]["max_active_neurons"] = 0.into();
        edited["params"]["value_bits"] = 99.into();
        let mut odd: Cad = serde_json::from_value(edited).unwrap();
        assert_eq!(odd.params().max_active_neurons, 1);
        assert_eq!(odd.params().value_bits, MAX_BITS);
        let c = run(&mut odd, &xs[..200], 3000);
        assert!(c.iter().all(|s| (0.0..=1.0).contains(&s.anomaly_score)));
        // A model whose links point past its tables is refused, not indexed.
        let model = |v: &mut serde_json::Value| v["streams"][0]["model"].take();
        let n = d.contexts()[0];
        type Edit = fn(&mut serde_json::Value, usize);
        let cases: [(&str, Edit); 5] = [
            ("not stored", |m, n| m["contexts"][3][3] = (n * 10).into()),
            ("not stored", |m, _| m["contexts"][3][2] = u32::MAX.into()),
            ("stored twice", |m, _| {
                m["contexts"][4] = m["contexts"][3].clone()
            }),
            ("left semi-context", |m, n| {
                m["left"][5] = serde_json::json!([1, NEURON as usize + n])
            }),
            ("right semi-context", |m, _| {
                m["right"][0] = serde_json::json!([3, 1])
            }),
        ];
        for (what, edit) in cases {
            let mut v = d.snapshot().unwrap();
            let mut m = model(&mut v);
            edit(&mut m, n);
            v["streams"][0]["model"] = m;
            let e = serde_json::from_value::<Cad>(v).unwrap_err().to_string();
            assert!(e.contains(what), "{what}: {e}");
        }
    }

    #[test]
    fn degenerate_inputs() {
        let mut d = Cad::new(CadParams::default(), 1);
        assert!(feed(&mut d, &[]).is_empty());
        let mut d = Cad::new(CadParams::default(), 1);
        let one = feed(&mut d, &[3.0]);
        assert_eq!(one[0].anomaly_score, 0.0);
        let wild = [
            f64::NAN,
            1e308,
            -1e308,
            f64::INFINITY,
            0.0,
            -5.0,
            f64::MAX,
            f64::MIN_POSITIVE,
            -0.0,
            f64::NEG_INFINITY,
            42.0,
        ];
        let xs: Vec<f64> = (0..500).map(|i| wild[(i * 7) % wild.len()]).collect();
        for params in [
            CadParams::default(),
            CadParams {
                rest_period: 0,
                value_bits: 40,
                max_active_neurons: 0,
                max_left_len: 0,
                margin: f64::INFINITY,
                history: 0,
                max_contexts: 0,
                ..CadParams::default()
            },
            CadParams {
                range: RangeMode::Fixed {
                    min: 10.0,
                    max: -10.0,
                },
                margin: -1.0,
                ..CadParams::default()
            },
        ] {
            let mut d = Cad::new(params, 3);
            for (i, x) in xs.iter().enumerate() {
                let values = if i % 3 == 0 {
                    vec![*x]
                } else {
                    vec![*x, -x, 1.0]
                };
                let s = d.process(&IntervalFeatures {
                    start_ms: 0,
                    end_ms: 1,
                    values: &values,
                    categories: &[],
                });
                assert!((0.0..=1.0).contains(&s.anomaly_score), "{s:?}");
                assert!((0.0..=1.0).contains(&s.anomaly_grade), "{s:?}");
                assert!((s.attribution.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            }
        }
        // Negative and huge magnitudes behave like any other range.
        let xs: Vec<f64> = (0..600).map(|i| -1e300 * f64::from(1 + i % 4)).collect();
        let s = scores(&mut Cad::new(CadParams::default(), 1), &xs);
        assert!(s[300..].iter().all(|&x| x < 0.3));
    }

    #[test]
    fn proposers_bound_only_cuts_the_scan_beyond_it() {
        // Noisy counts store a zero-level context on most rows; no cap rebuild here.
        let xs = counts(1500, 50.0, 3);
        let run = |max_proposers: usize| {
            let mut d = Cad::new(
                CadParams {
                    max_proposers,
                    max_contexts: usize::MAX,
                    ..CadParams::default()
                },
                1,
            );
            (scores(&mut d, &xs), d.contexts()[0])
        };
        let (all, stored) = run(0);
        // A bound above the number of zero-level semi-contexts changes nothing.
        assert_eq!(run(usize::MAX), (all.clone(), stored));
        assert!(stored > 5000, "{stored}");
        let (few, fewer) = run(16);
        assert!(fewer < stored / 2, "{fewer} of {stored}");
        assert_ne!(few, all);
        assert!(few.iter().all(|s| (0.0..=1.0).contains(s)));
        // Snapshots saved before the bound existed restore without it (all propose).
        let d = Cad::new(CadParams::default(), 1);
        let mut state = d.snapshot().unwrap();
        assert_eq!(state["params"]["max_proposers"], 256);
        state["params"]
            .as_object_mut()
            .unwrap()
            .remove("max_proposers");
        let old: Cad = serde_json::from_value(state).unwrap();
        assert_eq!(old.params().max_proposers, 0);
    }

    #[test]
    fn memory_stays_bounded_on_noise() {
        let xs: Vec<f64> = counts(6000, 50.0, 3);
        let params = CadParams {
            max_contexts: 3000,
            history: 1000,
            ..CadParams::default()
        };
        let mut d = Cad::new(params, 1);
        let mut most = 0;
        for chunk in xs.chunks(100) {
            feed(&mut d, chunk);
            most = most.max(d.contexts()[0]);
        }
        assert!(most <= 3000 + 200, "{most}");
        assert!(d.memory_bytes() < 2_000_000, "{}", d.memory_bytes());
    }
}
