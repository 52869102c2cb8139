module github.com/tailseal/tailseal

go 1.26.8

require (
	github.com/fsnotify/fsnotify v1.10.1
	github.com/kelseyhightower/envconfig v1.4.0
	github.com/nxadm/tail v1.4.11
	golang.org/x/mod v0.43.0
	golang.org/x/sys v0.50.0
	golang.org/x/term v0.48.0
)

require gopkg.in/tomb.v1 v1.0.0-20141024135613-dd632973f1e7 // indirect
