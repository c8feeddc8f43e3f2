<?php
// Drives Mapp's real PHP tracking library (mapp-php, unmodified) for tests/mapp_clients.py.
//
//   php php_driver.php <library dir> <mode> <trackDomain> <trackId> <https 0|1> <work dir> <scenario>
//
// mode:     CURL | FORK_CURL     track and flush through that consumer
//           FILE                 track into <work dir>/MappIntelligenceRequests.log (FILE consumer)
//           FILE_ROTATION        track into <work dir>/MappIntelligenceRequests-<ms>.tmp files
//           (the library's cronjob.php then sends those files; tests/mapp_clients.py runs it)
// scenario: identified | generated-eid | no-eid   (see SCENARIOS in tests/mapp_clients.py)
// Exit status: 0 when the library reported success, 1 otherwise (2: bad arguments).

if ($argc < 8) {
    fwrite(STDERR, "usage: php_driver.php <lib> <mode> <trackDomain> <trackId> <https> <workDir> <scenario>\n");
    exit(2);
}
list(, $libDir, $mode, $trackDomain, $trackId, $https, $workDir, $scenario) = $argv;

// What composer.json's autoload section sets up ("files": lib/MappIntelligence.php, "classmap": lib/):
// the library's own require_once lines miss some classes (MappIntelligenceDataMap, ...ServerCookie).
$classFiles = array();
$tree = new RecursiveIteratorIterator(new RecursiveDirectoryIterator(rtrim($libDir, '/') . '/lib'));
foreach ($tree as $file) {
    if ($file->isFile() && substr($file->getFilename(), -4) === '.php') {
        $classFiles[substr($file->getFilename(), 0, -4)] = $file->getPathname();
    }
}
spl_autoload_register(function ($class) use ($classFiles) {
    if (isset($classFiles[$class])) {
        require_once $classFiles[$class];
    }
});
require_once rtrim($libDir, '/') . '/lib/MappIntelligence.php';

$request = array(
    'userAgent' => 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) '
        . 'Chrome/124.0.0.0 Safari/537.36',
    'remoteAddress' => '203.0.113.7',
    'clientHintUserAgent' => '"Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"',
    'clientHintUserAgentFullVersionList' => '"Chromium";v="124.0.6367.60", "Google Chrome";v="124.0.6367.60", '
        . '"Not-A.Brand";v="99.0.0.0"',
    'clientHintUserAgentModel' => '""',
    'clientHintUserAgentMobile' => '?0',
    'clientHintUserAgentPlatform' => '"Windows"',
    'clientHintUserAgentPlatformVersion' => '"15.0.0"',
    'referrerURL' => 'https://www.google.com/',
    'requestURL' => 'https://shop.example.com/checkout/thank-you?order=ABC123&utm_source=newsletter',
);

$config = array_merge($request, array(
    'trackId' => $trackId,
    'trackDomain' => $trackDomain,
    'forceSSL' => $https === '1',
    'consumerType' => $mode,
    'filename' => rtrim($workDir, '/') . '/MappIntelligenceRequests.log',
    'filePath' => rtrim($workDir, '/') . '/',
    'filePrefix' => 'MappIntelligenceRequests',
));
if ($scenario === 'identified') {
    // The visitor's Smart Pixel cookie, as PHP would have it in $_COOKIE.
    $config['cookie'] = array('wtstp_eid' => '2171064588426634614');
}
if (!in_array($mode, array('CURL', 'FORK_CURL', 'FILE', 'FILE_ROTATION'), true)) {
    fwrite(STDERR, "unknown mode $mode\n");
    exit(2);
}

$mi = MappIntelligence::getInstance($config);
if ($scenario === 'generated-eid') {
    // What an app does for a new visitor: let the library create the everID and set its cookie.
    // The library passes setcookie() an expiry in milliseconds (microtime * 1000 + 6 months): PHP 7
    // only warns, PHP 8 throws a ValueError ("expires" year > 9999) after the everID was stored.
    // Catching it here lets the hit go out as it does on PHP 7; unhandled, it is a fatal error.
    try {
        $mi->setUserId(MappIntelligence::SMART, MappIntelligence::CLIENT_SIDE_COOKIE);
    } catch (Throwable $e) {
        fwrite(STDERR, 'setUserId: ' . get_class($e) . ': ' . $e->getMessage() . "\n");
    }
}

if ($scenario === 'identified') {
    $page = (new MappIntelligencePage('en.shop.checkout.thank-you'))
        ->setParameter(1, 'Thank you')
        ->setParameter(20, 'checkout')
        ->setCategory(1, 'shop')
        ->setCategory(2, 'checkout');
    // The PHP library has no setCustomIdentifier(): it cannot send ceid.
    $customer = (new MappIntelligenceCustomer('customer-24'))
        ->setEmail('juergen.mueller@example.com')
        ->setFirstName('Jürgen')
        ->setLastName('Müller')
        ->setCategory(1, 'gold');
    $order = (new MappIntelligenceOrder(109.97))
        ->setId('ABC123')
        ->setCurrency('EUR')
        ->setCouponValue(5)
        ->setPaymentMethod('paypal')
        ->setParameter(10, 'gift wrap');
    // Product 2 has no category 2 and no parameter 1: the library then sends ca2[0]=..&ca2[1]= (see notes).
    $products = (new MappIntelligenceProductCollection())
        ->add((new MappIntelligenceProduct('065ee2b001'))
            ->setCost(59.99)->setQuantity(1)->setStatus(MappIntelligenceProduct::CONFIRMATION)
            ->setCategory(1, 'Shirts')->setCategory(2, 'Men')->setParameter(1, 'L'))
        ->add((new MappIntelligenceProduct('085eo2f009'))
            ->setCost(49.98)->setQuantity(2)->setStatus(MappIntelligenceProduct::CONFIRMATION)
            ->setCategory(1, 'Socks'));
    $session = (new MappIntelligenceSession())->setLoginStatus('logged in')->setParameter(1, 'premium');
    $campaign = (new MappIntelligenceCampaign('newsletter.2024-05'))->setParameter(1, 'footer link');
    $mi->track((new MappIntelligenceDataMap())
        ->page($page)->customer($customer)->order($order)->product($products)->session($session)
        ->campaign($campaign));

    $action = (new MappIntelligenceAction('newsletter.signup'))
        ->setParameter(1, 'footer')
        ->setParameter(2, 'double opt-in');
    $mi->track((new MappIntelligenceDataMap())->action($action));
} else {
    $mi->track((new MappIntelligenceDataMap())->page(
        (new MappIntelligencePage('en.shop.home'))->setCategory(1, 'shop')
    ));
}

exit($mi->flush() ? 0 : 1);
