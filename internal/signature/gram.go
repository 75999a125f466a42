package signature

import (
	"encoding/binary"
	"sort"
	"strings"
	"unsafe"
)

// gramFilter is a 4-gram filter in front of the Aho-Corasick automaton.
// Each anchor contributes its two rarest 4-byte windows, folded with |0x20
// (ASCII case folding, applied to text and anchors alike), one to each of
// two bitsets. A line containing an anchor contains both of its windows, so
// it hits both bitsets: a line that misses either cannot match. The filter
// never hides a match; it spares the automaton most lines, for one load,
// multiply and bit test per byte.
type gramFilter struct {
	first, second [1 << (gramBits - 6)]uint64
	enabled       bool
}

const gramBits = 18

func gramHash(w uint32) uint32 { return (w * 0x9E3779B1) >> (32 - gramBits) }

func set(b *[1 << (gramBits - 6)]uint64, h uint32) { b[h/64] |= 1 << (h % 64) }

// newGramFilter builds the filter; it is disabled (passes every line) when
// an anchor is shorter than 4 bytes.
func newGramFilter(anchors []string) gramFilter {
	var f gramFilter
	for _, a := range anchors {
		if len(a) < 4 {
			return gramFilter{}
		}
		g1, g2 := rarestGrams(a)
		set(&f.first, gramHash(binary.LittleEndian.Uint32([]byte(a[g1:g1+4]))|0x20202020))
		set(&f.second, gramHash(binary.LittleEndian.Uint32([]byte(a[g2:g2+4]))|0x20202020))
	}
	f.enabled = true
	return f
}

// mayMatch reports whether s has a window in each set. Most lines have none
// of the first set, and are done after one pass of one load, multiply and
// bit test per byte.
func (f *gramFilter) mayMatch(s string) bool {
	if !f.enabled {
		return true
	}
	if len(s) < 4 {
		return false
	}
	// Read the string's bytes in place (the filter never writes them).
	b := unsafe.Slice(unsafe.StringData(s), len(s))
	return scan(&f.first, b) && scan(&f.second, b)
}

func scan(set *[1 << (gramBits - 6)]uint64, b []byte) bool {
	for i := 0; i+4 <= len(b); i++ {
		h := gramHash(binary.LittleEndian.Uint32(b[i:]) | 0x20202020)
		if set[h>>6]&(1<<(h&63)) != 0 {
			return true
		}
	}
	return false
}

// charRarity scores a byte: higher is rarer in log text. Spaces and common
// English letters score low; digits and punctuation high.
func charRarity(c byte) int {
	const letters = "etaoinshrdlcumwfgypbvkjxqz" // most to least frequent
	switch {
	case c == ' ':
		return 0
	case c >= 'a' && c <= 'z':
		r := 1 + strings.IndexByte(letters, c)
		return r * r / 8 // rare letters (k, x, q, z, f) weigh much more than common ones
	case c >= '0' && c <= '9':
		return 12
	default:
		return 20
	}
}

// commonBigrams are the most frequent letter pairs of English text (and of
// log text, which is mostly English words): a window made of them is common
// ("read", "work", "proc") even when its letters are not.
const commonBigrams = " th he in er an re on at en nd ti es or te of ed is it al ar st to nt ng se ha as ou io le ve co me de hi ri ro ic ne ea ra ce li ch ll be ma si om ur ad ow wo rk oc ea pr "

func bigramRarity(a, b byte) int {
	if a == ' ' || b == ' ' {
		return 0
	}
	if strings.Contains(commonBigrams, " "+string([]byte{a, b})+" ") {
		return 0
	}
	return 15
}

// commonWords are words found in any system log in quantity. A window that
// lies inside one of them filters nothing, so it is chosen only when an
// anchor has no other.
const commonWords = " failed failure error unable retry retrying system start starting started process processes thread threads worker working create created creating resource resources available unavailable temporarily cannot allocate memory running container connection request service "

func inCommonWord(w string) bool {
	return strings.Contains(commonWords, w)
}

// rarestGrams returns the offsets of the two rarest 4-byte windows of a
// (the same offset twice for a 4-byte anchor).
func rarestGrams(a string) (int, int) {
	lower := strings.ToLower(a)
	type win struct{ at, score int }
	var ws []win
	for i := 0; i+4 <= len(lower); i++ {
		score := 0
		for j := i; j < i+4; j++ {
			score += charRarity(lower[j])
			if j > i {
				score += bigramRarity(lower[j-1], lower[j])
			}
		}
		if inCommonWord(lower[i : i+4]) {
			score -= 1000
		}
		ws = append(ws, win{i, score})
	}
	sort.SliceStable(ws, func(i, j int) bool { return ws[i].score > ws[j].score })
	if len(ws) == 1 {
		return ws[0].at, ws[0].at
	}
	return ws[0].at, ws[1].at
}
