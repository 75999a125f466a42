for (1..100) { my $p = fork(); die "Can't fork: $!" unless defined $p; if ($p==0){ sleep 30; exit 0 } }
