package pii

// The types of phonedata.go, which signer/pii/internal/phonegen writes
// from libphonenumber's metadata.

// phoneMeta is a region's metadata, as libphonenumber's PhoneMetadata.
type phoneMeta struct {
	id                          string
	countryCode                 int
	internationalPrefix         string
	nationalPrefixForParsing    string
	nationalPrefixTransformRule string
	leadingDigits               string
	sameMobileAndFixed          bool
	general, fixed, mobile      phoneDesc
	// premium rate, toll free, shared cost, VoIP, personal, pager, UAN,
	// voicemail: in the order the library tests them
	others  [8]phoneDesc
	formats []phoneFormat
}

// phoneDesc is a PhoneNumberDesc.
type phoneDesc struct {
	pattern   string
	lengths   []int32
	localOnly []int32
}

// phoneFormat is a NumberFormat (of its leading digits patterns, only the
// last, the one the library reads).
type phoneFormat struct {
	pattern, format, leadingDigits, nationalPrefixFormattingRule string
}
