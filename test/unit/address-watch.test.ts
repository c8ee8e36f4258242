// Which netlink address lines make the agent re-announce itself to its peers.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isLocatorChange } from '../../agent/conn/address-watch.js';

describe('address watch: isLocatorChange', () => {
  const tap = 'idloc0';
  it('takes global IPv4 and IPv6 addresses appearing or going away', () => {
    assert.equal(isLocatorChange('2: eth0    inet 203.0.113.77/24 scope global eth0\\       valid_lft forever preferred_lft forever', tap), true);
    assert.equal(isLocatorChange('Deleted 2: eth0    inet 203.0.113.77/24 scope global eth0\\       valid_lft forever', tap), true);
    assert.equal(isLocatorChange('3: wlan0    inet6 2001:db8::5/64 scope global dynamic noprefixroute \\       valid_lft 86380sec', tap), true);
  });
  it('ignores the TAP, link-local and host-scope addresses (the kernel adds fe80:: to every link it brings up)', () => {
    assert.equal(isLocatorChange('5: idloc0    inet 100.66.91.91/10 scope global idloc0\\       valid_lft forever', tap), false);
    assert.equal(isLocatorChange('Deleted 5: idloc0    inet6 fd1d:10c0::1/64 scope global \\       valid_lft forever', tap), false);
    assert.equal(isLocatorChange('2: eth0    inet6 fe80::6424:93ff:fe71:92f6/64 scope link \\       valid_lft forever', tap), false);
    assert.equal(isLocatorChange('1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever', tap), false);
  });
  it('counts a line whose scope it cannot read (a missed move costs more than a spare refresh), but not noise', () => {
    assert.equal(isLocatorChange('2: eth0    inet 198.51.100.4/24 brd 198.51.100.255', tap), true);
    assert.equal(isLocatorChange('', tap), false);
    assert.equal(isLocatorChange('garbage without an index', tap), false);
  });
});

describe('address watch: default route changes', () => {
  it('a default route that comes or goes counts; one on our own TAP and other routes do not', () => {
    assert.equal(isLocatorChange('default via 10.11.0.1 dev eth1 ', 'idloc0'), true);
    assert.equal(isLocatorChange('Deleted default via 10.10.0.1 dev eth0 ', 'idloc0'), true);
    assert.equal(isLocatorChange('default dev idloc0 scope link ', 'idloc0'), false);
    assert.equal(isLocatorChange('10.11.0.0/24 dev eth1 proto kernel scope link src 10.11.0.2 ', 'idloc0'), false);
  });
  it('takes an uplink\'s link going down or up (the kernel drops its IPv4 routes without a route notification), not the TAP\'s', () => {
    assert.equal(isLocatorChange('3: eth0@if12: <BROADCAST,MULTICAST> mtu 1500 qdisc noqueue state DOWN group default \\    link/ether c2:6b:80:55:56:11 brd ff:ff:ff:ff:ff:ff', 'idloc0'), true);
    assert.equal(isLocatorChange('2: wlan0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default', 'idloc0'), true);
    assert.equal(isLocatorChange('7: idloc0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1420 qdisc fq_codel state UNKNOWN group default', 'idloc0'), false);
  });
});
