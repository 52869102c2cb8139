package parse

// Field returns the raw JSON value of the top-level key in obj, a JSON
// object as the agent stores it (valid JSON). Nested objects are skipped,
// not searched. nil when the key is absent.
func Field(obj []byte, key string) []byte {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil
	}
	for i++; ; i++ {
		i = skipSpace(obj, i)
		if i >= len(obj) || obj[i] != '"' {
			return nil
		}
		kEnd := SkipString(obj, i)
		k := obj[i:kEnd]
		i = skipSpace(obj, kEnd)
		if i >= len(obj) || obj[i] != ':' {
			return nil
		}
		i = skipSpace(obj, i+1)
		if i >= len(obj) {
			return nil
		}
		vEnd := skipValue(obj, i)
		if keyName(k) == key {
			return obj[i:vEnd]
		}
		i = skipSpace(obj, vEnd)
		if i >= len(obj) || obj[i] != ',' {
			return nil
		}
	}
}
