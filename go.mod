module github.com/pidpressure/pidpressure

go 1.26

require github.com/petar-dambovaliev/aho-corasick v0.0.0-20250424160509-463d218d4745
