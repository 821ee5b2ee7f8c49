module example.com/nohijack

go 1.22
