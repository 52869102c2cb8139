module github.com/tailseal/tailseal

go 1.26.8

require (
	github.com/fsnotify/fsnotify v1.10.1
	github.com/kelseyhightower/envconfig v1.4.0
	golang.org/x/sys v0.50.0
	golang.org/x/term v0.48.0
)
