module github.com/sysmayal/socketioguard

go 1.22
