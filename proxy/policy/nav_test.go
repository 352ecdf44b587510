package policy

import (
	"net/http"
	"testing"
)

func TestIsNavigation(t *testing.T) {
	const chromeAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
	tests := []struct {
		name   string
		method string
		h      map[string]string
		want   bool
	}{
		{"chrome document", "GET", map[string]string{"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document", "Accept": chromeAccept}, true},
		{"chrome iframe", "GET", map[string]string{"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe"}, true},
		{"fetch from script", "GET", map[string]string{"Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty", "Accept": "text/html"}, false},
		{"image", "GET", map[string]string{"Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"}, false},
		{"script", "GET", map[string]string{"Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "script", "Accept": "*/*"}, false},
		{"navigate to object", "GET", map[string]string{"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "object"}, false},
		{"old browser", "GET", map[string]string{"Accept": chromeAccept}, true},
		{"curl", "GET", map[string]string{"Accept": "*/*"}, false},
		{"no accept", "GET", nil, false},
		{"json preferred", "GET", map[string]string{"Accept": "application/json, text/html;q=0.5"}, false},
		{"html zero", "GET", map[string]string{"Accept": "text/html;q=0"}, false},
		{"post without metadata", "POST", map[string]string{"Accept": chromeAccept}, false},
		{"garbage accept", "GET", map[string]string{"Accept": ";;;,,=q"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := http.NewRequest(tt.method, "http://site.test/", nil)
			for k, v := range tt.h {
				r.Header.Set(k, v)
			}
			if got := IsNavigation(r); got != tt.want {
				t.Errorf("isNavigation = %v, want %v", got, tt.want)
			}
		})
	}
}
