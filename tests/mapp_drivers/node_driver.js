// Drives Mapp's real Node tracking library (mapp-node, unmodified) for tests/mapp_clients.py.
//
//   node node_driver.js <library dir> <mode> <trackDomain> <trackId> <https 0|1> <work dir> <scenario>
//
// mode:     HTTP_CLIENT | FORK_CURL  track and flush through that consumer
//           FILE                     track into request log files (FILE consumer) in <work dir>
//           CRONJOB                  send those log files, as the package's cron job does
// scenario: identified | generated-eid | no-eid   (see SCENARIOS in tests/mapp_clients.py)
// Exit status: 0 when the library reported success, 1 otherwise (2: bad arguments).
'use strict';

const fs = require('fs');
const path = require('path');

const [libDir, mode, trackDomain, trackId, https, workDir, scenario] = process.argv.slice(2);
if (!scenario) {
    process.stderr.write('usage: node_driver.js <lib> <mode> <trackDomain> <trackId> <https> <workDir> <scenario>\n');
    process.exit(2);
}
const mapp = require(path.resolve(libDir));
const forceSSL = https === '1';
const filePrefix = 'MappIntelligenceRequests';

const REQUEST = {
    userAgent: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) '
        + 'Chrome/124.0.0.0 Safari/537.36',
    remoteAddress: '203.0.113.7',
    clientHintUserAgent: '"Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"',
    clientHintUserAgentFullVersionList: '"Chromium";v="124.0.6367.60", "Google Chrome";v="124.0.6367.60", '
        + '"Not-A.Brand";v="99.0.0.0"',
    clientHintUserAgentModel: '""',
    clientHintUserAgentMobile: '?0',
    clientHintUserAgentPlatform: '"Windows"',
    clientHintUserAgentPlatformVersion: '"15.0.0"',
    referrerURL: 'https://www.google.com/',
    requestURL: 'https://shop.example.com/checkout/thank-you?order=ABC123&utm_source=newsletter',
    smartPixelEverId: '2171064588426634614',
};

function config(consumerType) {
    const c = new mapp.MappIntelligenceConfig(trackId, trackDomain)
        .setForceSSL(forceSSL)
        .setConsumerType(consumerType)
        .setUserAgent(REQUEST.userAgent)
        .setRemoteAddress(REQUEST.remoteAddress)
        .setClientHintUserAgent(REQUEST.clientHintUserAgent)
        .setClientHintUserAgentFullVersionList(REQUEST.clientHintUserAgentFullVersionList)
        .setClientHintUserAgentModel(REQUEST.clientHintUserAgentModel)
        .setClientHintUserAgentMobile(REQUEST.clientHintUserAgentMobile)
        .setClientHintUserAgentPlatform(REQUEST.clientHintUserAgentPlatform)
        .setClientHintUserAgentPlatformVersion(REQUEST.clientHintUserAgentPlatformVersion)
        .setReferrerURL(REQUEST.referrerURL)
        .setRequestURL(REQUEST.requestURL);
    if (consumerType === mapp.MappIntelligenceConsumerType.FILE) {
        c.setFilePath(workDir).setFilePrefix(filePrefix);
    }
    if (scenario === 'identified') {
        // The visitor's Smart Pixel cookie, as the web framework hands it over.
        c.addCookie('wtstp_eid', REQUEST.smartPixelEverId);
    }
    return c;
}

function orderPage() {
    const page = new mapp.MappIntelligencePage('en.shop.checkout.thank-you')
        .setParameter(1, 'Thank you')
        .setParameter(20, 'checkout')
        .setCategory(1, 'shop')
        .setCategory(2, 'checkout');
    const customer = new mapp.MappIntelligenceCustomer('customer-24')
        .setCustomIdentifier('crm-4711')
        .setEmail('juergen.mueller@example.com')
        .setFirstName('Jürgen')
        .setLastName('Müller')
        .setCategory(1, 'gold');
    const order = new mapp.MappIntelligenceOrder(109.97)
        .setId('ABC123')
        .setCurrency('EUR')
        .setCouponValue(5)
        .setPaymentMethod('paypal')
        .setParameter(10, 'gift wrap');
    const products = new mapp.MappIntelligenceProductCollection()
        .add(new mapp.MappIntelligenceProduct('065ee2b001')
            .setCost(59.99).setQuantity(1).setStatus(mapp.MappIntelligenceProduct.CONFIRMATION)
            .setCategory(1, 'Shirts').setCategory(2, 'Men').setParameter(1, 'L'))
        .add(new mapp.MappIntelligenceProduct('085eo2f009')
            .setCost(49.98).setQuantity(2).setStatus(mapp.MappIntelligenceProduct.CONFIRMATION)
            .setCategory(1, 'Socks'));
    const session = new mapp.MappIntelligenceSession().setLoginStatus('logged in').setParameter(1, 'premium');
    const campaign = new mapp.MappIntelligenceCampaign('newsletter.2024-05').setParameter(1, 'footer link');
    return new mapp.MappIntelligenceDataMap()
        .page(page).customer(customer).order(order).product(products).session(session).campaign(campaign);
}

function eventHit() {
    const action = new mapp.MappIntelligenceAction('newsletter.signup')
        .setParameter(1, 'footer')
        .setParameter(2, 'double opt-in');
    return new mapp.MappIntelligenceDataMap().action(action);
}

function plainPage() {
    return new mapp.MappIntelligenceDataMap().page(
        new mapp.MappIntelligencePage('en.shop.home').setCategory(1, 'shop'));
}

async function track(consumerType) {
    const mi = new mapp.MappIntelligenceTracking(config(consumerType));
    if (scenario === 'generated-eid') {
        // What an app does for a new visitor: let the library create the everID (and its cookie).
        mi.getUserIdCookie(mapp.MappIntelligenceTracking.SMART, mapp.MappIntelligenceTracking.CLIENT_SIDE_COOKIE);
    }
    if (scenario === 'identified') {
        await mi.track(orderPage());
        await mi.track(eventHit());
    } else {
        await mi.track(plainPage());
    }
    return mi.flush();
}

async function cronjob() {
    // The package's bin entry (cronjob.js) is not part of the copy; this is what it runs.
    const configFile = path.join(workDir, 'mapp-node-cronjob.json');
    fs.writeFileSync(configFile, JSON.stringify({consumer: {forceSSL: forceSSL}}));
    const job = new mapp.MappIntelligenceCronjob([
        '-i', trackId, '-d', trackDomain, '-f', workDir, '-p', filePrefix, '-c', configFile,
    ]);
    return (await job.run()) === 0;
}

async function main() {
    let ok;
    if (mode === 'CRONJOB') {
        ok = await cronjob();
    } else if (mode === 'FILE') {
        ok = await track(mapp.MappIntelligenceConsumerType.FILE);
    } else if (mode === 'HTTP_CLIENT' || mode === 'FORK_CURL') {
        ok = await track(mode);
    } else {
        process.stderr.write('unknown mode ' + mode + '\n');
        process.exit(2);
    }
    process.exit(ok ? 0 : 1);
}

main().catch((e) => {
    process.stderr.write(String(e && e.stack || e) + '\n');
    process.exit(1);
});
