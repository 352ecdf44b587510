package isolate

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
)

// containerPolicyFile is where Chromium on Linux reads mandatory (managed)
// enterprise policies, inside the container. Debian's Chromium 156 reads
// /etc/chromium/policies only, with no per-user location and no command-line
// switch, so the process runtime has no managed policy.
const containerPolicyFile = "/etc/chromium/policies/managed/glovebox.json"

// browserPolicies are the enterprise policies of every browser in a
// container. The flags keep a browser quiet only as far as they reach; these
// also hold where no flag exists, and are shown as applied in chrome://policy.
// README.md ("Isolated browser policies") gives the reason for each; every
// name is checked against Chromium 156 by TestContainerdPolicies.
//
// DeveloperToolsAvailability is left out on purpose: 2 (disallowed) makes
// Chromium refuse Glovebox's own DevTools protocol ("Not allowed"), and a user
// who sees only the page's video has no way to open DevTools anyway.
var browserPolicies = map[string]any{
	// A bad certificate gets an error page with no way through.
	"SSLErrorOverrideAllowed":           false,
	"SSLErrorOverrideAllowedForOrigins": []string{},
	// No Google account, sync, metrics or URL-keyed data collection.
	"BrowserSignin":                           0,
	"SyncDisabled":                            true,
	"MetricsReportingEnabled":                 false,
	"UrlKeyedAnonymizedDataCollectionEnabled": false,
	"DomainReliabilityAllowed":                false,
	// No background fetches: components, the on-device model, network
	// time, Safe Browsing lists, suggestions, spelling dictionaries,
	// translation, error-page suggestions, speculative connections.
	"ComponentUpdatesEnabled":             false,
	"GenAILocalFoundationalModelSettings": 1,
	"BrowserNetworkTimeQueriesEnabled":    false,
	"SafeBrowsingProtectionLevel":         0,
	"SearchSuggestEnabled":                false,
	"SpellcheckEnabled":                   false,
	"SpellCheckServiceEnabled":            false,
	"TranslateEnabled":                    false,
	"AlternateErrorPagesEnabled":          false,
	"NetworkPredictionOptions":            2,
	// Nothing typed into a disposable browser is kept or offered back.
	"PasswordManagerEnabled":       false,
	"PasswordLeakDetectionEnabled": false,
	"AutofillAddressEnabled":       false,
	"AutofillCreditCardEnabled":    false,
	// No prompts, promotions, Cast discovery or background life.
	"PromotionsEnabled":            false,
	"DefaultBrowserSettingEnabled": false,
	"BackgroundModeEnabled":        false,
	"EnableMediaRouter":            false,
	// WebRTC sends UDP only through a proxy, which Chromium's HTTP proxy
	// is not: no UDP at all, and no host candidates naming the browser's
	// own address. Its TCP goes through the egress proxy as the rest.
	"WebRtcIPHandling": "disable_non_proxied_udp",
	// Names are resolved by the egress proxy, never by the browser.
	"DnsOverHttpsMode":        "off",
	"BuiltInDnsClientEnabled": false,
}

// policyJSON returns the managed policy file of the browsers: browserPolicies
// and, when there are any, trustedCAs (DER) as CACertificates, trusted as
// roots besides Chromium's own.
func policyJSON(trustedCAs [][]byte) ([]byte, error) {
	p := maps.Clone(browserPolicies)
	if len(trustedCAs) > 0 {
		certs := make([]string, len(trustedCAs))
		for i, der := range trustedCAs {
			certs[i] = base64.StdEncoding.EncodeToString(der)
		}
		p["CACertificates"] = certs
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("browser policies: %w", err)
	}
	return append(b, '\n'), nil
}
