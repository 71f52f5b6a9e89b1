package testenv

import "math/rand/v2"

// trickyPieces are what YAML emitters get wrong: leading and trailing
// newlines, spaces and tabs (block scalar indentation and chomping),
// comment and mapping indicators, quotes, Compose's $$, CRLF, unicode and
// words YAML 1.1 reads as other types.
var trickyPieces = []string{
	"\n", "\n", "\n\n", "\r\n", " ", "  ", "\t", "#", " #", ": ", ":", "- ", "'", `"`, `\`, `\n`,
	"$$", "$", "${", "}", "{", "[", "]", ",", "&a", "*a", "!", "%", "@", "`", "|", ">", "---", "...",
	"~", "null", "yes", "0x1F", "1e3", "007", "é", "日本", "\u00a0", "\u2028", "\U0001F600",
	"a", "PROPS=", "a: 1", "key", "x y",
}

// YAMLStrings returns n strings made of pieces YAML emitters get wrong
// (plus the empty string), the same for the same seed: the inputs of a
// property test that a value survives a round trip through YAML.
func YAMLStrings(seed uint64, n int) []string {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := []string{""}
	for len(out) < n {
		var s string
		for range 1 + r.IntN(8) {
			s += trickyPieces[r.IntN(len(trickyPieces))]
		}
		out = append(out, s)
	}
	return out
}
