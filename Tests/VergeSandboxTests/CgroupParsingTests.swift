import Testing

@testable import VergeSandbox

@Suite struct CgroupParsingTests {
    @Test func findsV1HierarchiesAndTheHostsPlaceInThem() {
        let mountInfo = """
            30 25 0:26 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
            31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:10 - cgroup cgroup rw,cpu,cpuacct
            32 25 0:28 / /sys/fs/cgroup/pids rw,relatime shared:11 - cgroup cgroup rw,pids
            33 25 0:29 / /sys/fs/cgroup/unified rw,relatime shared:12 - cgroup2 cgroup2 rw,nsdelegate
            """
        let mounts = CgroupHierarchy.cgroupMounts(mountInfo)
        #expect(mounts.v2 == "/sys/fs/cgroup/unified")
        #expect(mounts.v1["memory"]?.path == "/sys/fs/cgroup/memory")
        #expect(mounts.v1["cpuacct"]?.path == "/sys/fs/cgroup/cpu,cpuacct")
        #expect(mounts.v1["cpuacct"]?.key == "cpu,cpuacct")
        #expect(mounts.v1["freezer"] == nil)

        let membership = CgroupHierarchy.membership("4:memory:/job/1\n2:cpuacct,cpu:/\n0::/user.slice\n")
        #expect(membership["memory"] == "/job/1")
        #expect(membership["cpu,cpuacct"] == "/")
        #expect(membership[""] == "/user.slice")
    }

    @Test func subordinateRangesThatMeetTheSandboxRangeAreFound() {
        let subuid = "alice:100000:65536\nbob:2100500000:10\n"
        #expect(SandboxUsers.overlap(of: 2_100_000_000...2_100_999_999, with: subuid) == "bob:2100500000:10")
        #expect(SandboxUsers.overlap(of: 200_000...300_000, with: subuid) == nil)
        #expect(SandboxUsers.overlap(of: 165_535...170_000, with: subuid) == "alice:100000:65536")
    }
}
