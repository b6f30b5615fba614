// The original tokenizer's canonicalization, restated with Go's standard library only, so that
// tests can compare exchange.tokenize with what Go itself does (its white space, its case mapping,
// its date parser). Built into a temporary directory by tests/unit/tokenize/conftest.py.
//
// Default mode: each stdin line is a JSON array of {given_name, family_name, dob, ssn}; each
// stdout line is the JSON array of {canonical, token, error_field} for them (token under -key).
// -table: prints the Unicode version and every code point that unicode.ToLower changes or
// unicode.IsSpace accepts, for an exhaustive comparison.
package main

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
	"unicode"
)

type identifiers struct {
	GivenName  string  `json:"given_name"`
	FamilyName string  `json:"family_name"`
	DOB        string  `json:"dob"`
	SSN        *string `json:"ssn"`
}

type result struct {
	Canonical  *string `json:"canonical"`
	Token      *string `json:"token"`
	ErrorField *string `json:"error_field"`
}

func name(value string) string {
	return strings.ToLower(strings.Join(strings.Fields(value), " "))
}

func ssn(value *string) string {
	if value == nil {
		return ""
	}
	var b strings.Builder
	for _, r := range *value {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func canonical(ids identifiers) (string, string) {
	given := name(ids.GivenName)
	if given == "" {
		return "", "given_name"
	}
	family := name(ids.FamilyName)
	if family == "" {
		return "", "family_name"
	}
	dob, err := time.Parse("2006-01-02", strings.TrimSpace(ids.DOB))
	if err != nil {
		return "", "dob"
	}
	return fmt.Sprintf("given_name=%s|family_name=%s|dob=%s|ssn=%s", given, family, dob.Format("2006-01-02"), ssn(ids.SSN)), ""
}

func table() error {
	lower := [][2]rune{}
	space := []rune{}
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if l := unicode.ToLower(r); l != r {
			lower = append(lower, [2]rune{r, l})
		}
		if unicode.IsSpace(r) {
			space = append(space, r)
		}
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{"version": unicode.Version, "lower": lower, "space": space})
}

func main() {
	key := flag.String("key", "", "HMAC key")
	dumpTable := flag.Bool("table", false, "print the case and space tables")
	flag.Parse()
	if *dumpTable {
		if err := table(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<26)
	out := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(out)
	for in.Scan() {
		var batch []identifiers
		if err := json.Unmarshal(in.Bytes(), &batch); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		results := make([]result, len(batch))
		for i, ids := range batch {
			text, field := canonical(ids)
			if field != "" {
				results[i] = result{ErrorField: &field}
				continue
			}
			mac := hmac.New(sha256.New, []byte(*key))
			mac.Write([]byte(text))
			token := hex.EncodeToString(mac.Sum(nil))
			results[i] = result{Canonical: &text, Token: &token}
		}
		if err := enc.Encode(results); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if err := out.Flush(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
