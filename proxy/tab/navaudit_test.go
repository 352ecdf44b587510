package tab

import "testing"

func TestPlaceholderTitle(t *testing.T) {
	for _, tc := range []struct {
		title, url string
		want       bool
	}{
		{"127.0.0.1:39439/next", "http://127.0.0.1:39439/next", true},
		{"a.test", "https://a.test/", true},
		{"", "http://a.test/", true},
		{"http://a.test/x", "http://a.test/x", true},
		{"Next Page", "http://127.0.0.1:39439/next", false},
		{"a.test/other", "http://a.test/x", false},
	} {
		if got := placeholderTitle(tc.title, tc.url); got != tc.want {
			t.Errorf("placeholderTitle(%q, %q) = %v, want %v", tc.title, tc.url, got, tc.want)
		}
	}
}
